"""Running the server: open the store, build the app, serve it with uvicorn until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import json
import logging
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ..errors import Conflict, InvalidInput
from ..service import Service
from ..settings import Settings
from ..store import Store, open_store
from .app import create_app

if TYPE_CHECKING:
    from .warm import Activity

#: Seconds in-flight requests and open streams get to finish after Ctrl-C (uvicorn's
#: ``timeout_graceful_shutdown``); then they are cancelled and the hub stops.
GRACE_SECONDS = 1


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, announcing where it listens once the sockets are bound."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[list[socket.socket]], None]):
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            bound = [s for server in self.servers for s in server.sockets]
            self.announce(bound)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await end_live_responses(self.config.app)
        await super().shutdown(sockets)


async def end_live_responses(app: object) -> None:
    """End the app's open MCP responses and live streams, at the start of a shutdown.

    uvicorn waits for open responses to finish before it runs the app's
    lifespan shutdown (which would stop the hub), so without this every open
    stream would be cut only after the grace period.
    """
    state = getattr(app, "state", None)
    mcp = getattr(state, "mcp", None)
    if mcp is not None:
        await mcp.close()
    hub = getattr(state, "hub", None)
    if hub is not None:
        await hub.stop()


class WarmServer(AnnouncingServer):
    """The warm relay's uvicorn server (:mod:`relaybus.server.warm`): it also stops
    once :class:`~relaybus.server.warm.Activity` has been idle for ``idle_seconds``
    (checked on uvicorn's tick, every 0.1 s)."""

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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Spawned agents (issue 19) are released before the relay goes.
        supervisor = getattr(self.activity.state, "supervisor", None)
        if supervisor is not None:
            await supervisor.shutdown()
        await super().shutdown(sockets)

    async def add_listener(self, sock: socket.socket, app: Any) -> None:
        """Serve the ASGI ``app`` on ``sock`` (bound, not yet listening) too, from now
        until this server stops, as :meth:`startup` serves its own sockets: the same
        protocol settings, lifespan state and connections, so the shutdown closes it
        and ends its connections with the others. ``app`` is served as it is
        (uvicorn's proxy-headers middleware is not put around it).
        """
        config = copy.copy(self.config)
        config.loaded_app = app

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(create_protocol, sock=sock, backlog=config.backlog)
        self.servers.append(server)

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        # Spawned agents (issue 19): the relay stays while one runs; its idle time
        # starts when the last one is gone.
        supervisor = getattr(self.activity.state, "supervisor", None)
        if supervisor is not None and supervisor.active:
            self.activity.last = time.monotonic()
            return False
        if self.activity.idle_for() >= self.idle_seconds:
            logging.getLogger("relaybus.warm").info(
                "relaybus: idle for %gs: exiting", self.idle_seconds
            )
            return True
        return False


def serve(
    settings: Settings,
    *,
    log_level: str = "info",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the relay the settings point at until SIGINT or SIGTERM, then shut down
    cleanly (streams closed, the store closed) and return.

    Logs one access line per request at ``info``. ``announce`` receives two
    lines once the server listens (default: printed to stdout): the URL with
    the auth mode, then the store it serves (a password in its URL masked).

    The address is bound before the store is opened, so a busy port is one
    line and nothing else.

    Raises:
        InvalidInput: :meth:`Settings.check_bind` refuses the address, or
            it cannot be bound (unknown host, no permission).
        Conflict: the port is in use.
        StoreError: the store cannot be opened.
    """
    settings.check_bind()
    raise_open_files_limit()
    say = announce or (lambda line: print(line, flush=True))
    sockets = bind(settings.host, settings.port)
    try:
        store = open_store(settings)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    try:
        service = Service(store)
        declared = declare_integrations(service, settings)
        app = create_app(service, settings)

        def listening(bound: list[socket.socket]) -> None:
            say(f"relaybus: serving {_url(settings, bound)} ({_auth_line(settings)})")
            say(f"relaybus: store {describe_store(store)}")
            if declared:
                say(f"relaybus: integrations declared: {', '.join(declared)}")

        server = AnnouncingServer(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=log_level,
                log_config=_log_config(),
                access_log=True,
                lifespan="on",
                timeout_graceful_shutdown=GRACE_SECONDS,
                server_header=False,
                # Per-connection zlib state costs ~40 KiB a socket and the CPU of
                # compressing every frame once per subscriber, for frames of a few
                # hundred bytes (bench/server.py: RSS and broadcast figures).
                ws_per_message_deflate=False,
            ),
            listening,
        )
        previous = signal.getsignal(signal.SIGTERM)
        try:
            # uvicorn re-raises the signal that stopped it once it has shut down;
            # a handler that ignores it makes SIGTERM, like Ctrl-C, a clean exit.
            signal.signal(signal.SIGTERM, _ignore)
            server.run(sockets=sockets)
        except KeyboardInterrupt:
            pass  # the re-raised SIGINT, after a clean shutdown
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        for sock in sockets:
            sock.close()
        store.close()


def declare_integrations(service: Service, settings: Settings) -> list[str]:
    """Apply ``settings.integrations`` (a JSON list; see
    :meth:`Service.declare_integrations`) to the settings' workspace.

    Returns:
        the names declared (none without the setting).

    Raises:
        InvalidInput: not a JSON list of objects, or an entry the service refuses.
    """
    if not settings.integrations:
        return []
    try:
        declared = json.loads(settings.integrations)
    except ValueError as exc:
        raise InvalidInput(f"RELAYBUS_INTEGRATIONS is not JSON: {exc}") from None
    if not isinstance(declared, list):
        raise InvalidInput("RELAYBUS_INTEGRATIONS is a JSON list of integrations")
    return service.declare_integrations(declared, workspace=settings.workspace)


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to ``host:port``, one per address ``host`` resolves to, as
    asyncio's ``create_server`` would bind them (``SO_REUSEADDR``; IPv6 only on
    IPv6 sockets). uvicorn listens on them.

    Raises:
        Conflict: the port is in use (``EADDRINUSE``).
        InvalidInput: the host does not resolve, or binding fails otherwise
            (no permission for a low port, an address not on this machine).
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {shown}: {exc.strerror}", host=host) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        why = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(
                f"port {port} is in use ({shown}: {why}): choose another with --port",
                host=host,
                port=port,
            ) from None
        raise InvalidInput(f"cannot listen on {shown}: {why}", host=host, port=port) from None
    return sockets


def describe_store(store: Store) -> str:
    """The store a server serves, for its start line: the SQLite file, or the
    database URL with its password masked."""
    if store.path is not None:
        return f"{store.path} (SQLite)"
    return store.url.render_as_string(hide_password=True)


def raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files to its hard limit: each live
    connection is a descriptor, and a common soft default (1,024) is below the
    thousand agents a relay should hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _ignore(_signum: int, _frame: Any) -> None:
    pass


def _url(config: Settings, sockets: list[socket.socket]) -> str:
    host, port = config.host, config.port
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            port = sock.getsockname()[1]
            break
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _auth_line(config: Settings) -> str:
    if config.admin_token is None:
        line = "auth: open, loopback only: every request acts as admin"
        return line + ("; /metrics needs the metrics token" if config.metrics_token else "")
    limit = f"; rate limit {config.rate_limit:g}/s per token" if config.rate_limit else ""
    metrics = "the metrics or the admin token" if config.metrics_token else "the admin token"
    tokens = "requests need the admin token or an agent token"
    return f"auth: token: {tokens}{limit}; /metrics needs {metrics}"


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with relaybus's own logger on the same handler."""
    log_config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["relaybus"] = {"handlers": ["default"], "level": "INFO"}
    # The same lines, flushed once per event-loop iteration (see AccessLogHandler).
    log_config["handlers"]["access"]["class"] = "relaybus.server.metrics.AccessLogHandler"
    log_config["formatters"]["access"]["()"] = "relaybus.server.metrics.AccessLineFormatter"
    return log_config
