"""The processes ``relaybus demo`` starts besides its agents' own: with ``--server``,
:class:`ServerProcess`, a real ``relaybus serve`` on a free loopback port that the
agents then reach only over HTTP (``RELAYBUS_URL``); and :func:`child_env`, the
environment of every process the demo starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import StoreError

#: Variables that would point the agents at another relay than the demo's (or send
#: another relay's token to it).
FOREIGN_ENV = (
    "RELAYBUS_DATABASE", "RELAYBUS_URL", "RELAYBUS_AGENT", "RELAYBUS_WORKSPACE",
    "RELAYBUS_TOKEN", "RELAYBUS_EPOCH",
)  # fmt: skip
#: How the demo's relay server starts; its options follow.
SERVER_PROGRAM = (sys.executable, "-m", "relaybus")
#: Variables that would change where or how the demo's server listens.
SERVER_ENV = ("RELAYBUS_DIR", "RELAYBUS_HOST", "RELAYBUS_PORT", "RELAYBUS_RATE_LIMIT")
#: Seconds the server gets to shut down after SIGTERM before it is killed.
SERVER_STOP_SECONDS = 10.0
#: Seconds between two looks at ``/readyz`` while the server gets ready.
READY_POLL_SECONDS = 0.05
#: Lines of the server's output kept to explain a failure.
SERVER_LOG_LINES = 40
#: The line ``relaybus serve`` prints once it listens.
ANNOUNCE_RE = re.compile(r"serving (https?://\S+)")


def child_env(drop: Sequence[str] = FOREIGN_ENV, **values: str) -> dict[str, str]:
    """The environment of a process the demo starts: ours without ``drop``, with
    ``values`` (``RELAYBUS_DIR=...``) set, importing relaybus from where we did."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(values)
    # The children import relaybus from wherever this process did (a source
    # checkout need not be installed); an installed one is found anyway.
    package_root = str(Path(__file__).resolve().parents[2])
    if package_root not in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
        paths = (package_root, env.get("PYTHONPATH"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class ServerProcess:
    """A ``relaybus serve`` subprocess for the demo: on a free loopback port (the
    operating system picks it), over its own relay folder, in open mode (no admin
    token; agents still act with the tokens registration gives them).

    ``program`` is the command line before ``--dir`` (tests swap it). Use
    :meth:`start`, then always :meth:`stop`: it ends the process by its pid.

    Attributes:
        url: where it listens (``None`` until it announced it).
        proc: the process (``None`` before :meth:`start`).
        log: its last lines of output (stdout and stderr), for a failure report.
        killed: :meth:`stop` had to kill it.
    """

    def __init__(
        self,
        relay_dir: Path,
        *,
        program: Sequence[str] = SERVER_PROGRAM,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.relay_dir = relay_dir
        self.program = list(program)
        self.env = dict(env) if env is not None else child_env((*FOREIGN_ENV, *SERVER_ENV))
        self.url: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.log: deque[str] = deque(maxlen=SERVER_LOG_LINES)
        self.killed = False
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once it ended (``None`` while running or never started)."""
        return None if self.proc is None else self.proc.poll()

    @property
    def clean_exit(self) -> bool:
        """It stopped on SIGTERM by itself, with status 0."""
        return self.returncode == 0 and not self.killed

    def start(self, timeout: float) -> str:
        """Start the server and return its URL once ``/readyz`` answers 200.

        Raises:
            StoreError: it exited, or was not ready within ``timeout`` seconds
                (it is stopped then; the message quotes its last line of output).
        """
        deadline = time.monotonic() + timeout
        self.relay_dir.mkdir(parents=True, exist_ok=True)
        args = ["--dir", str(self.relay_dir), "serve", "--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen(
            [*self.program, *args, "--log-level", "warning"],
            cwd=self.relay_dir.parent,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._listening.wait(max(deadline - time.monotonic(), 0.0))
        url = self.url
        if url is None:
            if self._listening.is_set():  # its output ended: it is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            raise self._failure(f"did not start within {timeout:g} s")
        self._wait_ready(url, deadline, timeout)
        return url

    def stop(self) -> None:
        """End the server by its pid: SIGTERM (a clean shutdown), then SIGKILL if it
        is still running after :data:`SERVER_STOP_SECONDS`. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.killed = True
        if self._reader is not None:
            self._reader.join(timeout=5.0)  # the pipe closed with the process
        if proc.stdout is not None:
            proc.stdout.close()

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.log.append(line)
            found = ANNOUNCE_RE.search(line) if self.url is None else None
            if found is not None:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # it exited (or closed its output) before announcing

    def _wait_ready(self, url: str, deadline: float, timeout: float) -> None:
        import httpx

        from ..client.transport import new_client

        # One client for the whole wait: each new one would load the CA bundle again.
        with new_client(url) as http:
            while True:
                if self.returncode is not None:
                    raise self._failure(f"exited with {self.returncode}")
                try:
                    if http.get("/readyz", timeout=2.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not answering yet
                if time.monotonic() >= deadline:
                    raise self._failure(f"was not ready within {timeout:g} s")
                time.sleep(READY_POLL_SECONDS)  # bounded by the deadline above

    def _failure(self, what: str) -> StoreError:
        code = self.returncode  # before stop(): whether it ended by itself
        self.stop()
        if code is not None:
            what = f"exited with {code}"
        said = next((line for line in reversed(self.log) if line.strip()), "")
        detail = f": {said.strip()}" if said else ""
        return StoreError(f"the demo's relay server {what}{detail}", pid=self.pid)
