"""The warm local relay: one ``relaybus serve`` per store, on a Unix socket, that
short-lived commands share instead of each opening the store.

The relay folder holds its socket (``relay.sock``, 0600, in the 0700 folder), a
spawn lock (``relay.lock``) and its log (``relay.log``, rotated). The first
command that needs the relay takes the spawn lock, looks again, and starts the
relay detached (``python -m relaybus.server.warm``) when none answers, so
commands that start at once start one relay; a socket file nobody listens on is
removed first. A relay of another relaybus version is stopped (SIGTERM) and
replaced, so a client always talks to its own version. The relay exits by
itself after its idle time with no request.

Standard library only (HTTP/1.1 over ``AF_UNIX`` with :class:`Connection`, ``json``,
``fcntl``): a command or a hook that talks to the warm relay imports no HTTP client
(not even ``http.client``, which imports ``ssl`` and ``email``), no SQLAlchemy and
no asyncio; :class:`Connection` uses the ``_socket`` extension itself (``socket``
builds enums of every constant on import, milliseconds of a hot command).
:class:`UnixHTTPConnection` (``http.client`` over the socket, for streams) loads
``http.client`` (and ``socket``) when it is first used. Linux and macOS.
"""

from __future__ import annotations

import _socket
import contextlib
import json
import os
import sys
import time
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from .. import __version__

# Not ``typing`` (nor ``dataclasses``, nor ``relaybus.errors``, which imports typing):
# a hook imports this module, and each costs it milliseconds. The errors are
# imported where they are raised.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import socket
    from typing import Any, NamedTuple

    class _WarmFields(NamedTuple):
        version: str
        pid: int | None
        socket: Path
else:
    # Not typing.NamedTuple, nor identity.FrozenRecord (its module imports ``socket``).
    _WarmFields = namedtuple("_WarmFields", ("version", "pid", "socket"))

#: ``signal.SIGTERM`` (15 on Linux and macOS): importing ``signal`` costs every command
#: that talks to the relay a millisecond, for a stop that seldom happens.
SIGTERM = 15
SOCKET_NAME = "relay.sock"
LOCK_NAME = "relay.lock"
#: Held by the warm relay for its whole life (one relay per folder); free once it exited.
OWNER_LOCK = "relay.lock.d"
LOG_NAME = "relay.log"
#: The route, on the socket only, that opens the relay's dashboard on 127.0.0.1
#: (:mod:`relaybus.server.loopback`): ``POST {"port": N}`` answers ``{"url", "token"}``.
UI_ROUTE = "/-/ui"
#: The longest socket path ``bind``/``connect`` take (``sun_path`` is 104 bytes
#: on macOS, 108 on Linux, with the terminating NUL).
MAX_SOCKET_PATH = 103
#: Seconds a start waits for the new relay to answer.
START_TIMEOUT = 20.0
#: Seconds a stop waits for the old relay to go.
STOP_TIMEOUT = 10.0
#: Seconds one request over the socket may take (a long-poll adds its wait).
REQUEST_TIMEOUT = 30.0
#: Variables the relay must not inherit from the command that starts it: they
#: describe that one caller (who it is, its session, which server or token it
#: uses), not the store; a client sends who it is with each request.
CALLER_VARIABLES = (
    "RELAYBUS_AGENT",
    "RELAYBUS_EPOCH",
    "RELAYBUS_URL",
    "RELAYBUS_TOKEN",
    "RELAYBUS_METRICS_TOKEN",
    "RELAYBUS_HOST",
    "RELAYBUS_PORT",
    "RELAYBUS_WORKSPACE",
    "RELAYBUS_SESSION",
    "RELAYBUS_TOOL",
    "RELAYBUS_LABEL",
    "RELAYBUS_TAGS",
    "RELAYBUS_CAPS",
    "RELAYBUS_CHANNELS",
    "RELAYBUS_AUTO_TAGS",
    "RELAYBUS_AUTO_CAPS",
    "RELAYBUS_PROFILE",
    "RELAYBUS_RUNTIME",
)


class WarmInfo(_WarmFields):
    """A running warm relay: its ``version``, process id (``pid``) and ``socket``
    (immutable; equal by its fields)."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "pid": self.pid, "socket": str(self.socket)}


def socket_path(relay_dir: Path) -> Path:
    """Where the relay of ``relay_dir`` listens: ``relay_dir/relay.sock``, or, when
    that path is too long for a Unix socket, ``/tmp/relaybus-<uid>/<hash>.sock``
    (:func:`~relaybus.identity.runtime_root`, 0700), the same for every process of
    this user whatever its ``TMPDIR``."""
    relay_dir = Path(os.path.abspath(relay_dir))
    inside = relay_dir / SOCKET_NAME
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
        return inside
    import hashlib  # only for a folder too deep for a socket path

    from ..identity import runtime_root  # (it imports socket, which a hook need not)

    digest = hashlib.sha256(os.fsencode(relay_dir)).hexdigest()[:24]
    return runtime_root() / f"{digest}.sock"


def unix_socket(path: Path, timeout: float | None) -> socket.socket:
    """A stream socket connected to ``path``, with ``timeout`` (seconds).

    Raises:
        OSError: nobody listens (``ConnectionRefusedError``, ``FileNotFoundError``).
    """
    import socket  # here: only streams (http.client) need a socket.socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return sock


class WarmResponse:
    """One HTTP response: ``status``, ``reason``, ``headers`` (names in lower case)
    and the whole ``body``."""

    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class _Reader:
    """Buffered reads of an ``_socket.socket``: what ``socket.makefile("rb")`` gives
    :class:`Connection` (``readline(limit)``, ``read(size)``, ``read()`` to the end)."""

    __slots__ = ("_sock", "_buffer")

    #: The most bytes one ``recv`` asks for.
    CHUNK = 65536

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, limit: int) -> bytes:
        """A line with its ``\\n``, at most ``limit`` bytes (cut there), or what is left
        before the end (``b""`` at the end)."""
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit:
                return self._take(limit)
            searched = len(self._buffer)
            chunk = self._sock.recv(self.CHUNK)
            if not chunk:
                return self._take(len(self._buffer))
            self._buffer += chunk

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (fewer at the end), or everything to the end when negative."""
        while size < 0 or len(self._buffer) < size:
            chunk = self._sock.recv(self.CHUNK if size < 0 else max(size - len(self._buffer), 1))
            if not chunk:
                break
            self._buffer += chunk
        return self._take(len(self._buffer) if size < 0 else size)

    def close(self) -> None:
        self._buffer.clear()


class Connection:
    """One keep-alive HTTP/1.1 connection to the server on the Unix socket ``path``,
    with ``socket`` alone: requests with a known body, answers read whole
    (``Content-Length``, chunked, or to the end). Not for streams (see
    :class:`UnixHTTPConnection`). Not thread-safe.

    ``timeout`` (seconds) bounds the connect and each read; :meth:`settimeout`
    changes it for the next request (a long-poll waits longer).
    """

    #: The longest status or header line read (bytes), as ``http.client``'s.
    MAX_LINE = 65536

    def __init__(self, path: Path, timeout: float = REQUEST_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._file: Any = None

    @property
    def connected(self) -> bool:
        """Whether a connection is open (a request would reuse it)."""
        return self._sock is not None

    def connect(self) -> None:
        """Connect now (a request connects by itself).

        Raises:
            OSError: nobody listens (``ConnectionRefusedError``, ``FileNotFoundError``).
        """
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(os.fspath(self.path))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._file = _Reader(sock)

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout
        if self._sock is not None:
            self._sock.settimeout(timeout)

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> WarmResponse:
        """Send one request and read its whole answer. The connection stays open
        unless the server closes it.

        Raises:
            OSError: no connection, a timeout (``TimeoutError``), or the connection
                broke or carried no HTTP answer (``ConnectionError``); the
                connection is closed then.
            ValueError: a header a request cannot carry (nothing was sent).
        """
        lines = [f"{method} {target} HTTP/1.1", "Host: relay"]
        for name, value in (headers or {}).items():
            # As http.client: Latin-1, no line breaks (a header must not end early).
            if "\r" in value or "\n" in value or not _latin1(value):
                raise ValueError(f"the {name} header cannot carry {value!r}")
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(head + body if body is not None else head)
            return self._answer(method)
        except BaseException:
            self.close()
            raise

    def _answer(self, method: str) -> WarmResponse:
        status_line = self._line().split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
            raise ConnectionError("the relay's answer is not HTTP")
        version, status = status_line[0], status_line[1]
        reason = status_line[2] if len(status_line) > 2 else ""
        if not status.isdigit():
            raise ConnectionError("the relay's answer is not HTTP")
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in ("204", "304"):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = self._chunked()
        elif "content-length" in headers:
            length = _length(headers["content-length"])
            body = self._file.read(length)
            if len(body) != length:
                raise ConnectionError("the relay closed the connection in an answer")
        else:
            body = self._file.read()
            headers["connection"] = "close"
        if version != "HTTP/1.1" or headers.get("connection", "").lower() == "close":
            self.close()
        return WarmResponse(int(status), reason, headers, body)

    def _line(self) -> str:
        """One line of the answer's head, without its line end ("" for the blank
        line that ends it).

        Raises:
            ConnectionError: the connection closed, or the line is not HTTP.
        """
        raw = self._file.readline(self.MAX_LINE + 1)
        if not raw:
            raise ConnectionError("the relay closed the connection without an answer")
        if len(raw) > self.MAX_LINE or not raw.endswith(b"\n"):
            raise ConnectionError("the relay's answer is not HTTP")
        line: str = raw.decode("latin-1").rstrip("\r\n")
        return line

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._line()
            try:
                size = int(size_line.split(";")[0], 16)
            except ValueError:
                raise ConnectionError("the relay's answer has a bad chunk") from None
            if size == 0:
                while self._line():  # trailers
                    pass
                return b"".join(parts)
            parts.append(self._file.read(size))
            self._line()  # the chunk's line end

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _length(value: str) -> int:
    if not value.isdigit():
        raise ConnectionError(f"the relay's answer has a bad Content-Length: {value!r}")
    return int(value)


def request(
    path: Path,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[int, bytes]:
    """One request to the relay at socket ``path``: ``(status, body)``.

    Raises:
        OSError: the socket refuses the connection or breaks (no relay there).
        ValueError: a header a request cannot carry.
    """
    connection = Connection(path, timeout)
    try:
        answer = connection.request(method, target, body=body, headers=headers)
    finally:
        connection.close()
    return answer.status, answer.body


if TYPE_CHECKING:

    class UnixHTTPConnection(http.client.HTTPConnection):
        """``http.client`` over a Unix socket (the host name is only the Host header)."""

        path: Path

        def __init__(self, path: Path, timeout: float = REQUEST_TIMEOUT) -> None: ...


def __getattr__(name: str) -> Any:
    # UnixHTTPConnection is made on first use: importing http.client costs every
    # command ssl and email, and only streams (the relaybus mcp bridge) need it.
    if name != "UnixHTTPConnection":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        """``http.client`` over a Unix socket (the host name is only the Host header)."""

        def __init__(self, path: Path, timeout: float = REQUEST_TIMEOUT) -> None:
            super().__init__("relay", timeout=timeout)
            self.path = path

        def connect(self) -> None:
            self.sock = unix_socket(self.path, self.timeout)

    globals()[name] = UnixHTTPConnection
    return UnixHTTPConnection


def probe(relay_dir: Path) -> WarmInfo | None:
    """The relay answering on ``relay_dir``'s socket, or ``None`` when nobody
    listens there (no file, or a stale file: refused)."""
    path = socket_path(relay_dir)
    try:
        status, body = request(path, "GET", "/v1/info", timeout=5.0)
    except OSError:
        return None
    if status != 200:
        return None
    info = json.loads(body)
    replica = str(info.get("replica", ""))
    pid_text = replica.rpartition(":")[2]
    return WarmInfo(str(info["version"]), int(pid_text) if pid_text.isdigit() else None, path)


def ensure(relay_dir: Path, *, env: Mapping[str, str] | None = None) -> WarmInfo:
    """The warm relay of ``relay_dir`` at this relaybus version, started if needed.

    Concurrent callers start one relay (the spawn lock); a stale socket file is
    removed; a relay of another version is stopped and replaced.

    Raises:
        StoreError: the relay did not start (the message ends with its log's
            last line) or the old one would not stop.
    """
    info = probe(relay_dir)
    if info is not None and info.version == __version__:
        return info
    from .warm_start import spawn_lock, start

    with spawn_lock(relay_dir):
        info = probe(relay_dir)
        if info is not None and info.version != __version__:
            stop(relay_dir, info)
            info = None
        if info is None:
            info = start(relay_dir, env)
    if info.version != __version__:
        from ..errors import StoreError

        raise StoreError(
            f"the warm relay started by {sys.executable} is relaybus {info.version}, but this "
            f"is relaybus {__version__}: two installations share {relay_dir}; set "
            "RELAYBUS_DAEMON=0 in one of them",
            pid=info.pid,
        )
    return info


def stop(relay_dir: Path, info: WarmInfo | None = None) -> bool:
    """Stop the warm relay of ``relay_dir`` (SIGTERM, then wait for its socket to
    close); one still starting is waited for first. Returns whether one was running.

    Raises:
        StoreError: it is still answering after :data:`STOP_TIMEOUT` seconds.
    """
    from .warm_start import starting, wait_released

    info = info or probe(relay_dir) or starting(relay_dir)
    if info is None:
        return False
    if info.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while probe(relay_dir) is not None:
        if time.monotonic() > deadline:
            from ..errors import StoreError

            raise StoreError(
                f"the warm relay (pid {info.pid}, relaybus {info.version}) did not stop: "
                f"stop it with `kill {info.pid}`",
                pid=info.pid,
            )
        time.sleep(0.02)
    wait_released(relay_dir, deadline)
    return True


def log_path(relay_dir: Path) -> Path:
    """The warm relay's log file."""
    return Path(relay_dir) / LOG_NAME


def disabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``RELAYBUS_DAEMON`` turns the warm relay off (``0``, ``false``,
    ``no``, ``off``): every command then opens the store itself."""
    value = (os.environ if env is None else env).get("RELAYBUS_DAEMON", "")
    return value.strip().lower() in ("0", "false", "no", "off")


def held(relay_dir: Path) -> bool:
    """Whether a relay holds ``relay_dir``'s :data:`OWNER_LOCK` (it takes the lock before
    it binds its socket and keeps it until it exits)."""
    import fcntl

    try:
        fd = os.open(Path(relay_dir) / OWNER_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False  # no relay ever started here
    try:  # closing the descriptor releases the lock again
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
