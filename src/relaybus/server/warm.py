"""The warm local relay's process: ``relaybus serve``'s application on the relay
folder's Unix socket, exiting after ``daemon_idle_seconds`` with no request.

Started detached by :func:`relaybus.client.warm.ensure` as
``python -m relaybus.server.warm`` with ``RELAYBUS_DIR`` set, its output going to
``relay.log``. It serves in open mode (no admin token): the socket is 0600 in the
0700 relay folder, so only its owner can connect, as only its owner can open the
SQLite file. ``relaybus ui`` may ask it (``POST /-/ui``, on the socket only) to serve
the dashboard on 127.0.0.1 as well, behind a token (:mod:`.loopback`). One process per
relay folder: it holds an exclusive lock on ``relay.lock.d`` (a second one exits at
once with a line in the log). It removes its socket file when it exits, unless
another relay has replaced it.
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
from typing import TYPE_CHECKING, Any

from ..client.warm import OWNER_LOCK, UI_ROUTE, socket_path

if TYPE_CHECKING:
    from ..settings import Settings

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
    closes) and remembers when the last one ended.

    Called as an app, it serves the relay's socket: requests get a local Host, and
    the paths of :attr:`socket_routes` (``/-/ui``) go to their own app, on the socket
    only. :meth:`serve` counts a request of another listener (the dashboard's
    loopback one, :mod:`relaybus.server.loopback`) without touching it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: The application's state: the shutdown ends its live streams through it.
        self.state = getattr(app, "state", None)
        self.in_flight = 0
        self.last = time.monotonic()
        #: Apps by path, served on the socket only, before the relay's app.
        self.socket_routes: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Every request here comes over the Unix socket, local by construction: no
        # browser reaches it, so no DNS rebinding. Its Host is the loopback name that
        # the MCP endpoint's rebinding check (the SDK's, on for loopback) accepts.
        scope["headers"] = [
            (name, LOCAL_HOST if name == b"host" else value) for name, value in scope["headers"]
        ]
        await self.serve(scope, receive, send, self.socket_routes.get(scope["path"], self.app))

    async def serve(
        self, scope: Scope, receive: Any, send: Any, app: ASGIApp | None = None
    ) -> None:
        """Serve a request with ``app`` (default: the relay's), counted in flight."""
        self.in_flight += 1
        try:
            await (app or self.app)(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with no request in flight (0 while one is)."""
        return 0.0 if self.in_flight else time.monotonic() - self.last


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
    if path.parent != relay_dir:  # too deep for a socket: in the user's runtime folder
        from ..store.files import private_runtime_folder

        private_runtime_folder(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file is 0600 from the start
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old_mask)
    inode = os.stat(path).st_ino
    # Imported here, with the collector paused by main(): this is most of a start.
    import uvicorn

    from ..service import Service
    from ..store import open_store
    from ..tools.hooks.host import session_host
    from .app import create_app
    from .loopback import Loopback
    from .routes.spawned import SupervisorSlot
    from .run import WarmServer, describe_store

    store = open_store(settings)
    try:
        app = create_app(Service(store), settings)
        # The sessions of ``relaybus mcp`` bridges (they say which coding-agent
        # session they are) get their Claude Code hook host here, beside the store.
        app.state.mcp_endpoint.session_host = session_host
        # Spawned agents (issue 19): supervised here, the supervisor made on first use.
        app.state.supervisor = SupervisorSlot(app.state.service, relay_dir)
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
        activity.socket_routes[UI_ROUTE] = Loopback(server, activity.serve, relay_dir)
        _collect_from_here()
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
    from .metrics import lean_log_records

    lean_log_records()  # the format shows the time and the message only
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
            end = self.stream.seek(0, 2)
            if self.maxBytes > 0 and end + len(text) >= self.maxBytes:
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(text)
            self.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:  # logging's own boundary: report it and go on
            self.handleError(record)


def _collect_from_here() -> None:
    """Hand what the start loaded to ``gc.freeze`` and turn the collector back on
    (:func:`main` paused it: see :func:`relaybus.cli.app.loading`, the same for a
    command). Each collection after this walks only what serving creates."""
    import gc

    gc.freeze()
    gc.enable()


def main() -> None:
    """``python -m relaybus.server.warm``: serve ``RELAYBUS_DIR`` (see :func:`run`).

    The cyclic garbage collector is paused from here until the app is built: the
    imports and the app make tens of thousands of long-lived objects, which it
    would otherwise walk again and again finding no garbage (about 100 ms of a
    start's 650 ms of CPU)."""
    import gc

    gc.disable()
    from ..errors import RelayError
    from ..settings import Settings

    try:
        code = run(Settings())
    except RelayError as exc:
        print(f"relaybus: error: {exc.message}", flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
