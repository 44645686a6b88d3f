"""``relaybus serve`` as a real process: it starts, announces itself, logs requests,
refuses an exposed bind without a token, and exits 0 on Ctrl-C (SIGINT) or SIGTERM.

Starting, serving and stopping run on each dialect (``--database URL`` for PostgreSQL);
the bind and token checks do not depend on the store and run once, on SQLite."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import HUNG, bearer, problem
from tests.support.live import UNUSED_TLS

ANNOUNCE = "relaybus: serving "


class Serve:
    """A running ``relaybus serve``: its output lines arrive on :attr:`lines`."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str) -> str:
        """The first output line starting with ``prefix`` (waits for it)."""
        while True:
            line = self.lines.get(timeout=HUNG)
            if line is None:
                raise AssertionError(f"exited without {prefix!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Send ``sig``; returns the exit code (the process must exit)."""
        self.proc.send_signal(sig)
        code = self.proc.wait(HUNG)
        self._reader.join(HUNG)
        while (line := self.lines.get_nowait()) is not None:
            self.output.append(line)
        return code


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    clean["RELAYBUS_DIR"] = str(tmp_path / ".relay")
    return subprocess.Popen(
        [sys.executable, "-m", "relaybus", "serve", *args],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )


@contextlib.contextmanager
def serving(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    database: str | None = None,
) -> Iterator[Serve]:
    """Start ``relaybus serve --port 0 ARGS`` (``--database URL`` if given, else the SQLite
    file under ``tmp_path/.relay``); kills it if the test did not stop it."""
    if database is not None:
        args = ("--database", database, *args)
    server = Serve(run(tmp_path, "--port", "0", *args, env=env))
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(HUNG)
        server._reader.join(HUNG)
        assert server.proc.stdout is not None
        server.proc.stdout.close()


def url_of(announcement: str) -> str:
    return announcement.removeprefix(ANNOUNCE).split()[0]


def test_serve_starts_answers_logs_each_request_and_exits_0_on_ctrl_c(
    tmp_path: Path, database: str | None
) -> None:
    with serving(tmp_path, database=database) as server:
        announcement = server.expect(ANNOUNCE)
        url = url_of(announcement)
        assert httpx.get(f"{url}/healthz", timeout=HUNG, verify=UNUSED_TLS).json() == {
            "status": "ok"
        }
        info = httpx.get(f"{url}/v1/info", timeout=HUNG, verify=UNUSED_TLS).json()
        server.expect("")  # at least one more line: the access log
        code = server.stop(signal.SIGINT)

    assert url.startswith("http://127.0.0.1:")
    assert "auth: open" in announcement
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in server.output)
    assert code == 0
    assert not any("Traceback" in line for line in server.output)
    assert info["backend"] == ("sqlite" if database is None else "postgresql")
    assert (tmp_path / ".relay" / "relay.db").exists() == (database is None)


def test_serve_exits_0_on_sigterm(tmp_path: Path, database: str | None) -> None:
    with serving(tmp_path, database=database) as server:
        server.expect(ANNOUNCE)
        assert server.stop(signal.SIGTERM) == 0


def test_ctrl_c_closes_open_streams_and_exits_0(tmp_path: Path, database: str | None) -> None:
    with serving(tmp_path, database=database) as server:
        url = url_of(server.expect(ANNOUNCE))
        ended = threading.Event()
        ready = threading.Event()

        def watch() -> None:
            with contextlib.suppress(httpx.HTTPError):
                with httpx.stream(
                    "GET", f"{url}/v1/stream", timeout=HUNG, verify=UNUSED_TLS
                ) as stream:
                    for line in stream.iter_lines():
                        if line.startswith("event: ready"):
                            ready.set()
            ended.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert ready.wait(HUNG), "the stream did not open"

        assert server.stop(signal.SIGINT) == 0
        assert ended.wait(HUNG), "the stream stayed open"


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--host", "0.0.0.0"), {}), ((), {"RELAYBUS_HOST": "0.0.0.0"})],
    ids=["option", "environment"],
)
def test_serve_refuses_a_non_loopback_address_without_a_token(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    proc = run(tmp_path, *args, env=env)
    out, _ = proc.communicate(timeout=HUNG)

    assert proc.returncode != 0
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("relaybus: error: refusing to listen on 0.0.0.0 without an admin")
    assert "RELAYBUS_TOKEN" in lines[0]


def test_serve_with_a_token_requires_it_and_the_option_beats_the_environment(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, "--token", "from-option", env={"RELAYBUS_TOKEN": "from-env"}) as server:
        announcement = server.expect(ANNOUNCE)
        url = url_of(announcement)
        without = httpx.get(f"{url}/v1/info", timeout=HUNG, verify=UNUSED_TLS)
        env_token = httpx.get(
            f"{url}/v1/info", headers=bearer("from-env"), timeout=HUNG, verify=UNUSED_TLS
        )
        option_token = httpx.get(
            f"{url}/v1/info", headers=bearer("from-option"), timeout=HUNG, verify=UNUSED_TLS
        )
        assert server.stop() == 0

    assert "auth: token" in announcement
    problem(without, 401)
    problem(env_token, 401)
    assert option_token.json()["auth"] == "token"
