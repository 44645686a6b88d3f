"""Cross-process wake-ups: a writer tells waiting readers "something changed".

SQLite has no LISTEN/NOTIFY, so on the embedded store each waiter binds a Unix
datagram socket in a folder derived from the database path and every write
sends one empty datagram to each socket there after it commits. An idle
waiter sleeps in ``select()`` and costs nothing; a write costs one
``listdir`` plus one ``sendto`` per waiter. Sockets of dead processes are
unlinked by the first writer that gets ``ECONNREFUSED``.

PostgreSQL uses its own ``LISTEN``/``NOTIFY`` (delivered on commit) on one
connection per process (:class:`PostgresNotifier`), which every replica of a
cluster holds, so a commit on one replica wakes the others.

Waiters always re-check the database after a wake-up and at least every
``fallback`` seconds, so a missed datagram delays a wake-up but never loses a
message.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import select
import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import StoreError
from ..identity import runtime_root
from .files import mark, private_runtime_folder, sweep_runtime

logger = logging.getLogger(__name__)

CHANNEL = "relaybus"
#: Seconds before the first reconnect of a lost LISTEN connection; doubles up to RECONNECT_MAX.
RECONNECT_FIRST = 0.05
RECONNECT_MAX = 2.0
#: Seconds a new waiter waits for the first LISTEN to be in place.
CONNECT_SECONDS = 5.0
#: Seconds of silence after which the LISTEN connection is checked with a query.
HEALTH_SECONDS = 10.0
#: Seconds :meth:`PostgresNotifier.close` waits for its thread.
STOP_SECONDS = 5.0


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if woken by a notification."""

    def fileno(self) -> int:
        """A descriptor that turns readable on a notification, for an event loop's
        ``add_reader``; call :meth:`drain` after it fires."""

    def drain(self) -> bool:
        """Consume pending notifications without blocking; True if there were any."""

    @property
    def announced(self) -> int | None:
        """After a wake-up: the highest event id the writers announced, or
        ``None`` if unknown (the caller must re-read)."""


class SocketNotifier:
    """Unix-datagram wake-ups for every process using one SQLite file.

    The sockets live in ``/tmp/relaybus-<uid>/<hash of the database path>/``
    (:func:`~relaybus.identity.runtime_root`, the same for every process of the user);
    the first folder must be this user's and closed to others
    (:func:`~relaybus.store.files.private_runtime_folder`). Each per-database
    folder records its database in a ``.database`` file, so that folders of
    databases that are gone can be removed (:func:`~relaybus.store.files.sweep_runtime`).

    Raises:
        StoreError: (on creation and in :meth:`listen`) the runtime folder
            belongs to another user or others may write in it.
    """

    def __init__(self, database_path: Path) -> None:
        self.database = database_path.resolve()
        digest = hashlib.sha256(str(self.database).encode("utf-8")).hexdigest()[:16]
        # Not next to the database: AF_UNIX paths are limited to ~104 bytes.
        self.root = runtime_root()
        self.folder = self.root / digest
        self._sender: socket.socket | None = None
        self._trusted = False
        # Per thread: the names of this process's waiter sockets its commits skip (muted()).
        self._muted = threading.local()
        if os.path.lexists(self.root):
            private_runtime_folder(self.root)
            self._trusted = True

    def notify(self, *, commit: bool = True) -> None:
        """Wake every waiter on this database (call after commit); a ``commit`` skips
        the waiters this thread has :meth:`muted`, a wake-up without one (``commit=False``)
        wakes them too."""
        if not self._trusted and not self._trust():
            return
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        if not names:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        muted: frozenset[str] = getattr(self._muted, "names", frozenset()) if commit else _NONE
        for name in names:
            if name[0] == "." or name in muted:
                continue  # the folder's .database record, not a waiter; or muted()
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
    def muted(self, listener: Listener) -> Iterator[None]:
        """While the block runs, this thread's commits do not wake ``listener`` (one
        of this notifier's own, from :meth:`listen`); every other waiter, and other
        threads' commits, wake as before. For a waiter that reads the database itself
        after the block, so that its own wake-up would be a read of nothing."""
        name = listener.name if isinstance(listener, _SocketListener) else None
        before: frozenset[str] = getattr(self._muted, "names", frozenset())
        if name is None or name in before:
            yield
            return
        self._muted.names = before | {name}
        try:
            yield
        finally:
            self._muted.names = before

    def _trust(self) -> bool:
        # The runtime folder appeared after this store opened: check it once
        # before writing into it. A commit already happened, so a refusal is a
        # warning here (waiters still re-check on their fallback poll).
        if not os.path.lexists(self.root):
            return False
        try:
            private_runtime_folder(self.root)
        except StoreError as exc:
            logger.warning("not waking waiters: %s", exc.message)
            return False
        self._trusted = True
        return True

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """Bind a waiter socket for the duration of the block.

        Bind before checking the database: a write that commits after the
        check then still finds the socket and wakes the waiter.

        Raises:
            StoreError: the runtime folder is not private to this user.
        """
        private_runtime_folder(self.root)
        self._trusted = True
        path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            try:
                self._enter_folder()
                sock.bind(str(path))
            except FileNotFoundError:
                # A sweep in another process removed the folder between our mkdir
                # and bind (it found it unused): make it again.
                self._enter_folder()
                sock.bind(str(path))
            sock.setblocking(False)
            listener = _SocketListener(sock, path.name)
            try:
                yield listener
            finally:
                listener.close()
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _enter_folder(self) -> None:
        try:
            self.folder.mkdir(mode=0o700)
        except FileExistsError:
            mark(self.folder, self.database)
            return
        mark(self.folder, self.database)
        sweep_runtime(self.root, keep=self.folder)  # a new folder: clear out dead ones

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None


_NONE: frozenset[str] = frozenset()


class _SocketListener:
    #: Datagrams carry no event id.
    announced: int | None = None

    def __init__(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        #: The socket's file name in the notifier's folder.
        self.name = name
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


class PostgresNotifier:
    """One ``LISTEN relaybus`` connection per process, shared by every waiter.

    A daemon thread holds an autocommit psycopg connection (``application_name``
    ``relaybus-listen-<pid>``, so operators can find it in ``pg_stat_activity``)
    and writes one byte into each waiter's pipe per notification. When the
    connection drops (a PostgreSQL restart, a failover, ``pg_terminate_backend``)
    it reconnects with backoff (:data:`RECONNECT_FIRST` doubling to
    :data:`RECONNECT_MAX` seconds) and then wakes every waiter, which re-reads the
    event log from its own cursor: a lost connection costs latency, never an event.

    Writers notify with the id of their last event as the payload (``NOTIFY
    relaybus, '<id>'``); each waiter sees the highest id announced since it last
    woke in :attr:`PipeListener.announced`.
    """

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._waiters: set[PipeListener] = set()
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._closed = False
        #: Set while the LISTEN connection is up.
        self.connected = threading.Event()
        #: How many times the LISTEN connection was opened (1 + reconnects).
        self.connections = 0

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """Register a waiter for the duration of the block (see :class:`Listener`).

        The first call starts the listening thread and waits up to
        :data:`CONNECT_SECONDS` for ``LISTEN`` to be in place; a waiter that
        registers while the connection is down still wakes once it is back.
        """
        self._start()
        listener = PipeListener()
        with self._lock:
            self._waiters.add(listener)
        try:
            yield listener
        finally:
            with self._lock:
                self._waiters.discard(listener)
            listener.close()

    def close(self) -> None:
        """Stop the thread and close the connection (waits up to a few seconds)."""
        if self._closed:
            return
        self._closed = True
        os.write(self._stop_w, b"!")
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
        os.close(self._stop_r)
        os.close(self._stop_w)

    # -- the listening thread -----------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return  # later waiters never stall on an outage: the reconnect wakes them
            self._thread = threading.Thread(target=self._run, name="relaybus-listen", daemon=True)
            self._thread.start()
        self.connected.wait(CONNECT_SECONDS)

    def _run(self) -> None:
        import psycopg

        delay = RECONNECT_FIRST
        while not self._closed:
            try:
                conn = psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=f"relaybus-listen-{os.getpid()}",
                )
            except psycopg.Error as exc:
                logger.warning(
                    "cannot open the LISTEN connection (%s); retrying in %.2f s",
                    _first_line(exc),
                    delay,
                )
                if self._pause(delay):
                    return
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self.connections += 1
                delay = RECONNECT_FIRST
                if self.connections > 1:
                    logger.warning("LISTEN connection back; waking waiters to catch up")
                # Whatever committed while nobody listened. Before `connected` is set: a waiter
                # that registers once listen() returns must not get this id-less wake-up on top
                # of its first NOTIFY (it would read `announced` as None).
                self._wake(None)
                self.connected.set()
                if self._pump(conn):
                    return
            except psycopg.Error as exc:
                logger.warning("lost the LISTEN connection (%s); reconnecting", _first_line(exc))
            finally:
                self.connected.clear()
                conn.close()
            if self._pause(delay):
                return

    def _pump(self, conn: Any) -> bool:
        """Hand notifications to waiters until the connection fails (raises) or
        :meth:`close` (returns True)."""
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ, "pg")
            selector.register(self._stop_r, selectors.EVENT_READ, "stop")
            while True:
                ready = selector.select(HEALTH_SECONDS)
                if any(key.data == "stop" for key, _ in ready):
                    return True
                if not ready:
                    conn.execute("SELECT 1")  # idle: prove the connection still works
                    continue
                # A zero timeout takes what the socket holds; a closed connection raises.
                for note in conn.notifies(timeout=0, stop_after=None):
                    self._wake(_event_id(note.payload))

    def _wake(self, event_id: int | None) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.notify(event_id)

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless closed meanwhile; True if closed."""
        ready, _, _ = select.select([self._stop_r], [], [], seconds)
        return bool(ready) or self._closed


class PipeListener:
    """A waiter of :class:`PostgresNotifier`: a pipe the notifier writes one byte
    into per wake-up, so it works with ``select`` and an event loop's
    ``add_reader`` alike.

    Attributes:
        announced: after :meth:`wait` or :meth:`drain` returned True, the highest
            event id announced by those wake-ups, or ``None`` when any of them
            carried no id (a reconnect, :meth:`Store.wake`): then re-read anyway.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()
        self._pending: int | None = 0  # 0: nothing pending; None: unknown id
        self.announced: int | None = None

    def notify(self, event_id: int | None) -> None:
        """Called by the notifier's thread."""
        with self._lock:
            if event_id is None or self._pending is None:
                self._pending = None
            else:
                self._pending = max(self._pending, event_id)
        try:
            os.write(self._w, b"!")
        except (BlockingIOError, OSError):
            pass  # full of wake-ups already (it will wake), or closed

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._r], [], [], max(timeout, 0.0))
        return bool(ready) and self.drain()

    def fileno(self) -> int:
        return self._r

    def drain(self) -> bool:
        found = False
        while True:
            try:
                if not os.read(self._r, 4096):
                    break
            except BlockingIOError:
                break
            found = True
        if found:
            with self._lock:
                self.announced = self._pending
                self._pending = 0
        return found

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


def _event_id(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
