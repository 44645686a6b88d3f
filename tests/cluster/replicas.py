"""Real relay replicas for the cluster tests, and the clients the tests hold to them.

A :class:`Replica` is ``python -m relaybus serve --database URL --port 0`` in a
subprocess on loopback, with its own environment, its output copied line by
line into a log file (:meth:`Replica.log_tail` for failure reports) by a reader
thread, which also notices the ``relaybus: serving URL`` announcement. It is
stopped by its pid: SIGTERM, then SIGKILL if it has not exited within
:data:`STOP_SECONDS`. :func:`replicas` starts several at once, on what may be
an empty database, so their migrate-on-open runs concurrently.

Client helpers: :func:`api` (an httpx client of one replica, optionally as an
agent), :func:`register`, :func:`sse` (an SSE connection read in the caller's
thread, every read bounded by :data:`HUNG`), :func:`metric` (one Prometheus
figure of a replica) and :func:`wait_until` (poll an observable condition with
a deadline).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_sse import ServerSentEvent, connect_sse
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import UNUSED_TLS

T = TypeVar("T")

#: Seconds any single wait (a start, a read, a request) may take before the test calls it
#: hung: far above any real figure, reached only when something is broken.
HUNG = 30.0
#: Seconds a replica gets to exit after SIGTERM before it is killed.
STOP_SECONDS = 10.0
#: Seconds between two looks at a condition polled by :func:`wait_until`.
POLL_SECONDS = 0.05
ANNOUNCE = "relaybus: serving "
WORKSPACE_HEADER = "X-Relaybus-Workspace"
#: Every replica this process started, for the logs of a failed test (conftest.py).
STARTED: list[Replica] = []


class Replica:
    """One running ``relaybus serve`` process: :attr:`url` once it listens, :attr:`pid`."""

    def __init__(self, name: str, proc: subprocess.Popen[str], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self.url = ""
        self.announced = threading.Event()
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if not self.url and line.startswith(ANNOUNCE):
                    self.url = line.removeprefix(ANNOUNCE).split()[0]
                    self.announced.set()
        self.announced.set()  # the process ended: stop waiting for an announcement

    def wait_announced(self, timeout: float = HUNG) -> str:
        """The URL the replica listens on (``http://127.0.0.1:PORT``).

        Raises:
            AssertionError: it exited, or said nothing within ``timeout`` s.
        """
        self.announced.wait(timeout)
        if not self.url:
            raise AssertionError(f"replica {self.name} did not start:\n{self.log_tail()}")
        return self.url

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the replica's output."""
        try:
            text = self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        return text[-chars:]

    def kill(self) -> int:
        """SIGKILL the process (by pid) and reap it; returns its exit code (-9)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        code = self.proc.wait(HUNG)
        self._finish()
        return code

    def terminate(self) -> None:
        """Send SIGTERM (a clean shutdown) unless the process has exited."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after :data:`STOP_SECONDS`; returns the exit code."""
        self.terminate()
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(HUNG)
        self._finish()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def _finish(self) -> None:
        self._reader.join(HUNG)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def replica_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``RELAYBUS_*``, with HOME and the XDG
    folders under ``home`` (a replica never touches the real ~), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    for name, sub in (
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        env[name] = str(home / sub) if sub else str(home)
    env.update(extra or {})
    return env


def start_replica(
    name: str, database_url: str, folder: Path, env: Mapping[str, str] | None = None
) -> Replica:
    """Start one replica on ``database_url`` without waiting for it; its output goes to
    ``folder/NAME.log``. Call :meth:`Replica.wait_announced` before using it."""
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "relaybus", "serve", "--database", database_url),
            *("--port", "0", "--log-level", "warning"),  # warnings and errors, no access log
        ],
        cwd=home,
        env=replica_env(home, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )
    replica = Replica(name, proc, folder / f"{name}.log")
    STARTED.append(replica)
    return replica


@contextlib.contextmanager
def replicas(
    database_url: str,
    folder: Path,
    names: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> Iterator[list[Replica]]:
    """Start one replica per name, all at once, wait until every one listens, and stop
    them all (SIGTERM, then SIGKILL) after the block, whatever happened."""
    started: list[Replica] = []
    try:
        for name in names:
            started.append(start_replica(name, database_url, folder, env))
        for replica in started:
            replica.wait_announced()
        yield started
    finally:
        for replica in started:
            replica.terminate()  # all at once: each takes a moment to shut down
        for replica in started:
            replica.stop()


# -- waiting -----------------------------------------------------------------------


def wait_until(check: Callable[[], T], what: str, timeout: float = HUNG) -> T:
    """Call ``check`` until it returns something truthy, at most ``timeout`` seconds;
    returns that value.

    Raises:
        AssertionError: ``what`` did not come true in time (with the last value seen).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {found!r})")
        time.sleep(POLL_SECONDS)  # between two looks at the condition, not a wait for it


# -- clients -------------------------------------------------------------------------


def api(replica: Replica, token: str | None = None, workspace: str | None = None) -> httpx.Client:
    """An httpx client of ``replica``: with no token it is the admin (open mode); the
    ``workspace`` header goes on every request if given."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if workspace is not None:
        headers[WORKSPACE_HEADER] = workspace
    return httpx.Client(base_url=replica.url, headers=headers, timeout=HUNG, verify=UNUSED_TLS)


def register(client: httpx.Client, agent_id: str, **fields: Any) -> str:
    """Register ``agent_id`` through ``client`` (an admin client); returns its token."""
    reply = client.post("/v1/agents", json={"id": agent_id, **fields})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    return token


def metric(replica: Replica, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` on the replica's ``/metrics`` whose labels
    include ``labels`` (0.0 if there are none)."""
    reply = httpx.get(f"{replica.url}/metrics", timeout=HUNG, verify=UNUSED_TLS)
    reply.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


class StreamEnded(AssertionError):
    """The server ended an event stream (or it ran past its deadline) with no message."""


class EventStream:
    """An open ``GET /v1/stream``, read in the caller's thread.

    :attr:`ready` is the data of its ``ready`` frame; :attr:`last_id` the id of
    the last event read (what a client resumes from with ``Last-Event-ID``).
    Each read waits at most :data:`HUNG` seconds (httpx's read timeout).
    """

    def __init__(self, events: Iterator[ServerSentEvent]) -> None:
        self._events = events
        first = next(events)
        assert first.event == "ready", first
        self.ready: dict[str, Any] = json.loads(first.data)
        self.last_id: int | None = None

    def __iter__(self) -> Iterator[ServerSentEvent]:
        for sse in self._events:
            if sse.id:
                self.last_id = int(sse.id)
            yield sse

    def next_message(self, deadline: float | None = None) -> dict[str, Any]:
        """The message of the next ``message.sent`` event (other kinds are skipped).

        Raises:
            StreamEnded: the stream ended, or ``deadline`` (``time.monotonic()``)
                passed, first.
            httpx.TransportError: the connection broke, or was silent for :data:`HUNG` s.
        """
        for sse in self:
            if sse.event == "message.sent":
                message: dict[str, Any] = json.loads(sse.data)["data"]["message"]
                return message
            if deadline is not None and time.monotonic() > deadline:
                break
        raise StreamEnded("the stream ended (or ran past its deadline) without a message")


@contextlib.contextmanager
def sse(replica: Replica, token: str, last_event_id: int | None = None) -> Iterator[EventStream]:
    """``GET /v1/stream`` on ``replica`` as the token's agent (from ``last_event_id`` if
    given), past its ``ready`` frame; closed after the block."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with (
        httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client,
        connect_sse(client, "GET", f"{replica.url}/v1/stream", headers=headers) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        yield EventStream(source.iter_sse())
