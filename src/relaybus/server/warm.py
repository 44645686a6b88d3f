"""The warm local relay's process: ``relaybus serve``'s application on the relay
folder's Unix socket, exiting after ``daemon_idle_seconds`` with no request.

Started detached by :func:`relaybus.client.warm.ensure` as
``python -m relaybus.server.warm`` with ``RELAYBUS_DIR`` set, its output going to
``relay.log``. It serves in open mode (no admin token): the socket is 0600 in the
0700 relay folder, so only its owner can connect, as only its owner can open the
SQLite file. One process per relay folder: it holds an exclusive lock on
``relay.lock.d`` (a second one exits at once with a line in the log). It removes its
socket file when it exits, unless another relay has replaced it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import logging.handlers
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from ..client.warm import socket_path
from ..service import Service
from ..settings import Settings
from ..store import open_store
from ..tools.hooks.host import session_host
from .app import create_app
from .run import AnnouncingServer, describe_store

#: Held for the relay's whole life: one warm relay per relay folder.
OWNER_LOCK = "relay.lock.d"
#: The log rotates at this size, keeping this many old files.
LOG_BYTES = 1 << 20
LOG_BACKUPS = 3

#: The Host header requests over the socket are given (see :class:`Activity`): a
#: loopback name with a port, as the rebinding check wants; no port is listened on.
LOCAL_HOST = b"localhost:0"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class Activity:
    """ASGI middleware that counts requests in flight (a stream counts until it
    closes) and remembers when the last one ended; requests get a local Host."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: The application's state: the shutdown ends its live streams through it.
        self.state = getattr(app, "state", None)
        self.in_flight = 0
        self.last = time.monotonic()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Every request comes over the Unix socket, local by construction: no browser
        # reaches it, so no DNS rebinding. Its Host is the loopback name that the MCP
        # endpoint's rebinding check (the SDK's, on for loopback) accepts.
        scope["headers"] = [
            (name, LOCAL_HOST if name == b"host" else value) for name, value in scope["headers"]
        ]
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with no request in flight (0 while one is)."""
        return 0.0 if self.in_flight else time.monotonic() - self.last


class WarmServer(AnnouncingServer):
    """uvicorn's server that also stops once :class:`Activity` has been idle for
    ``idle_seconds`` (checked on uvicorn's tick, every 0.1 s)."""

    def __init__(
        self,
        config: uvicorn.Config,
        announce: Callable[[list[socket.socket]], None],
        activity: Activity,
        idle_seconds: float,
    ) -> None:
        super().__init__(config, announce)
        self.activity = activity
        self.idle_seconds = idle_seconds

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        if self.activity.idle_for() >= self.idle_seconds:
            logging.getLogger("relaybus.warm").info(
                "relaybus: idle for %gs: exiting", self.idle_seconds
            )
            return True
        return False


def run(settings: Settings) -> int:
    """Serve ``settings.dir`` on its socket until idle or SIGTERM; returns the exit code
    (0; 3 when another warm relay already owns the folder)."""
    relay_dir = Path(os.path.abspath(settings.dir or "."))
    owner = os.open(relay_dir / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("relaybus: another warm relay serves this folder: exiting", flush=True)
        return 3
    path = socket_path(relay_dir)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file is 0600 from the start
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old_mask)
    inode = os.stat(path).st_ino
    store = open_store(settings)
    try:
        app = create_app(Service(store), settings)
        # The sessions of ``relaybus mcp`` bridges (they say which coding-agent
        # session they are) get their Claude Code hook host here, beside the store.
        app.state.mcp_endpoint.session_host = session_host
        _log_to_file(relay_dir)  # after the app: a library may set up logging on import
        activity = Activity(app)

        def listening(_bound: list[socket.socket]) -> None:
            log = logging.getLogger("relaybus.warm")
            log.info("relaybus: warm relay (pid %d) on %s", os.getpid(), path)
            log.info("relaybus: store %s", describe_store(store))

        config = uvicorn.Config(
            activity,
            log_level="info",
            log_config=None,  # _log_to_file set the loggers up
            access_log=True,
            lifespan="on",
            timeout_graceful_shutdown=1,
            server_header=False,
            ws_per_message_deflate=False,
        )
        server = WarmServer(config, listening, activity, settings.daemon_idle_seconds)
        signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn handles it; exit 0
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == inode:
                path.unlink()
        store.close()
        os.close(owner)
    return 0


def _log_to_file(relay_dir: Path) -> None:
    """uvicorn's and relaybus's loggers write to ``relay.log`` (rotated), not to the
    inherited stdout (the same file, unrotated: only a crash before this lands there)."""
    handler = RelayLog(
        relay_dir / "relay.log", maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.root.handlers = [handler]
    logging.root.setLevel(logging.INFO)
    for name in ("relaybus", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


class RelayLog(logging.handlers.RotatingFileHandler):
    """``relay.log``: rotated where :class:`~logging.handlers.RotatingFileHandler`
    rotates it (when a record would take the file to ``maxBytes``), but each record
    is formatted once. The stdlib's ``shouldRollover`` formats the record a second
    time and stats the file twice; with the access log that is on every request.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            # To the end first: the relay's inherited stdout appends to the same file.
            self.stream.seek(0, 2)
            if self.maxBytes > 0 and self.stream.tell() + len(text) >= self.maxBytes:
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(text)
            self.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:  # logging's own boundary: report it and go on
            self.handleError(record)


def main() -> None:
    """``python -m relaybus.server.warm``: serve ``RELAYBUS_DIR`` (see :func:`run`)."""
    from ..errors import RelayError

    try:
        code = run(Settings())
    except RelayError as exc:
        print(f"relaybus: error: {exc.message}", flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
