"""Cross-process wake-ups: a writer tells waiting readers "something changed".

SQLite has no LISTEN/NOTIFY, so on the embedded store each waiter binds a Unix
datagram socket in a folder derived from the database path and every write
sends one empty datagram to each socket there after it commits. An idle
waiter sleeps in ``select()`` and costs nothing; a write costs one
``listdir`` plus one ``sendto`` per waiter. Sockets of dead processes are
unlinked by the first writer that gets ``ECONNREFUSED``.

PostgreSQL uses its own ``LISTEN``/``NOTIFY`` (delivered on commit).

Waiters always re-check the database after a wake-up and at least every
``fallback`` seconds, so a missed datagram delays a wake-up but never loses a
message.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import selectors
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

CHANNEL = "relaybus"


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if woken by a notification."""

    def fileno(self) -> int:
        """A descriptor that turns readable on a notification, for an event loop's
        ``add_reader``; call :meth:`drain` after it fires."""

    def drain(self) -> bool:
        """Consume pending notifications without blocking; True if there were any."""


class SocketNotifier:
    """Unix-datagram wake-ups for every process using one SQLite file."""

    def __init__(self, database_path: Path) -> None:
        digest = hashlib.sha256(str(database_path.resolve()).encode("utf-8")).hexdigest()[:16]
        # Not next to the database: AF_UNIX paths are limited to ~104 bytes.
        self.folder = Path(tempfile.gettempdir()) / f"relaybus-{os.getuid()}" / digest
        self._sender: socket.socket | None = None

    def notify(self) -> None:
        """Wake every waiter on this database (call after commit)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        if not names:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                self._sender.sendto(b"!", path)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already: it will wake
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # the waiter died without cleaning up

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """Bind a waiter socket for the duration of the block.

        Bind before checking the database: a write that commits after the
        check then still finds the socket and wakes the waiter.
        """
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            sock.setblocking(False)
            listener = _SocketListener(sock)
            try:
                yield listener
            finally:
                listener.close()
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None


class _SocketListener:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)

    def wait(self, timeout: float) -> bool:
        woken = bool(self._selector.select(max(timeout, 0.0)))
        if woken:
            self.drain()
        return woken

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> bool:
        found = False
        while True:
            try:
                self._sock.recv(64)
            except BlockingIOError:
                return found
            found = True

    def close(self) -> None:
        self._selector.close()


class PostgresListener:
    """``LISTEN relaybus`` on a dedicated autocommit psycopg connection."""

    def __init__(self, conninfo: str) -> None:
        import psycopg

        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        # The generator holds the connection's lock: leave it before draining.
        woken = any(True for _ in self._conn.notifies(timeout=max(timeout, 0.0), stop_after=1))
        if woken:
            self.drain()
        return woken

    def fileno(self) -> int:
        return int(self._conn.fileno())

    def drain(self) -> bool:
        # A zero timeout returns what the socket already holds, without blocking.
        found = False
        for _ in self._conn.notifies(timeout=0, stop_after=None):
            found = True
        return found

    def close(self) -> None:
        self._conn.close()
