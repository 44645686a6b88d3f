"""The ASGI application: :func:`create_app` wires routes, auth, limits, metrics and the hub."""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import __version__
from ..service import Service
from ..settings import Settings
from . import compat, dashboard, problems
from .auth import Authenticator, ServerContext
from .groups import SendGroups
from .hub import Hub
from .limits import BodyLimit, RateLimiter
from .metrics import Metrics, RequestMetrics
from .routes import (
    agents,
    events,
    history,
    inbox,
    integrations,
    messages,
    pairs,
    spawned,
    stream,
    system,
    tasks,
    workflow_runs,
    ws,
)
from .sweeper import REPLICA, Sweeper

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from ..integrations.sender import CallbackSender
    from .mcp import HookHost, McpEndpoint

DESCRIPTION = """Agent-to-agent messaging: agents, messages, inboxes, threads, tasks and claims,
the event log, and live delivery (Server-Sent Events at /v1/stream, a WebSocket at /v1/ws,
long-polls with `?wait=`).

Errors are `application/problem+json`. Send `Authorization: Bearer <token>`: the admin
token, or the agent token `POST /v1/agents` returns (it acts as that agent only).
"""


def create_app(service: Service, config: Settings | None = None) -> FastAPI:
    """The relay's ASGI app over ``service``, run as ``config`` says (host, token,
    limits, sweeps; default: the service's own settings, ``service.settings``).

    ``app.state`` holds ``service``, ``config``, ``metrics``, ``context`` (what
    routes need), ``started_at`` (``time.monotonic()``) and ``hub``: the one
    reader of the event log, started by the app's lifespan and stopped, closing
    live streams, at its shutdown. The lifespan also runs the background
    :class:`~relaybus.server.sweeper.Sweeper` unless ``config`` turns its jobs off
    (``sweep_interval`` and ``prune_interval`` 0).
    MCP (streamable HTTP) is served at ``/mcp`` (:mod:`relaybus.server.mcp`); its
    sessions live inside the lifespan too. ``app.state.lean_routes`` (True) lets
    the hot routes skip FastAPI's dependency solving (``routes.LeanRoute``); the
    test that compares both paths turns it off on one of two servers.
    """
    config = service.settings if config is None else config
    metrics = Metrics()
    limiter = (
        RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit is not None else None
    )
    auth = Authenticator(
        service, config, limiter=limiter, default_workspace=service.settings.workspace
    )

    hub = Hub(service, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        sweeper = Sweeper(
            service,
            sweep_interval=config.sweep_interval,
            prune_interval=config.prune_interval,
            metrics=metrics,
            after_prune=auth.cache.forget,
            callbacks=callback_sender(service, config, metrics),
            wakeup=hub,
        )
        sweeper.start()
        try:
            async with anyio.create_task_group() as tasks:
                mcp.begin(tasks)
                try:
                    yield
                finally:
                    mcp.end()  # MCP sessions end before the hub stops
        finally:
            await sweeper.stop()
            await hub.stop()
            sends.close()

    app = FastAPI(
        title="relaybus",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: from packaged files (dashboard.install)
        redoc_url=None,
        middleware=[
            # Outermost first: a 413 from the body limit is counted too.
            Middleware(RequestMetrics, metrics=metrics),
            Middleware(BodyLimit, limit=config.body_limit()),
        ],
    )
    app.state.service = service
    app.state.config = config
    app.state.metrics = metrics
    app.state.hub = hub
    app.state.lean_routes = True
    sends = SendGroups(service, hub, metrics, kill_key=messages.KILL_AFTER_COMMIT)
    app.state.context = ServerContext(service, config, metrics, auth, hub, sends)
    app.state.started_at = time.monotonic()
    problems.install(app)
    # Routing tries routes in order: sending first (the hot path), and the inbox
    # routes before the agents routes, since `/v1/agents/{agent_id}` accepts ids
    # with `/` and would swallow `/v1/agents/{agent_id}/inbox`.
    # The routes themselves, not `include_router`: FastAPI builds an included router's
    # routes again for each app on its first request (dependants, pydantic adapters:
    # about 0.3 s of CPU), while these were built once, when their modules loaded.
    for module in (
        messages,
        inbox,
        agents,
        tasks,
        integrations,
        history,
        pairs,
        spawned,
        events,
        workflow_runs,
        system,
        stream,
        ws,
    ):
        app.router.routes.extend(module.router.routes)
    # agent-relay-server's /api/* (docs/compat.md), after /v1 and out of its document.
    for router in compat.ROUTERS:
        app.router.routes.extend(router.routes)
    mcp = LazyMcp(app, app.state.context)
    app.state.mcp_endpoint = mcp
    app.router.routes.append(Route("/mcp", endpoint=mcp, include_in_schema=False))
    dashboard.install(app)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = problems.drop_null_parameters(problems.add_schema(generate()))
            if config.admin_token is None:
                problems.optional_security(document)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def callback_sender(service: Service, config: Settings, metrics: Metrics) -> CallbackSender:
    """The callback sender of this server, counting its attempts in ``metrics``
    (imports httpx when the server starts, not when a command imports the app)."""
    from ..integrations.sender import CallbackSender

    def observe(outcome: str) -> None:
        metrics.callback_attempts.labels(outcome).inc()

    return CallbackSender(service, runner=REPLICA, timeout=config.callback_timeout, observe=observe)


class LazyMcp:
    """``/mcp``, with the MCP SDK imported (about 25 MiB and a second and a half of
    CPU) and its session manager started on the first MCP request, so a relay
    nobody speaks MCP to never pays for it. (A ``relaybus mcp`` bridge opens its
    relay session as soon as its client's ``initialize`` arrives, so the import runs
    while the client is still listing tools.)

    Once loaded, ``app.state.mcp`` is the :class:`~relaybus.server.mcp.HttpRuntime`.
    """

    def __init__(self, app: FastAPI, context: ServerContext) -> None:
        self.app = app
        self.context = context
        #: Serves the hook commands of bridged sessions (see ``HttpRuntime.session_host``).
        self.session_host: HookHost | None = None
        self._endpoint: McpEndpoint | None = None
        self._tasks: TaskGroup | None = None
        self._lock: anyio.Lock | None = None
        self._stop: anyio.Event | None = None

    def begin(self, tasks: TaskGroup) -> None:
        """Called by the lifespan: MCP sessions run in ``tasks`` until :meth:`end`."""
        self._tasks, self._lock, self._stop = tasks, anyio.Lock(), anyio.Event()

    def end(self) -> None:
        """Called by the lifespan at shutdown: the session manager stops."""
        if self._stop is not None:
            self._stop.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoint or await self.load()
        await endpoint(scope, receive, send)

    async def load(self) -> McpEndpoint:
        """Import the MCP side (in a worker thread: the event loop keeps serving),
        build it, and start its session manager; once.

        Raises:
            RuntimeError: the app's lifespan has not started.
        """
        if self._tasks is None or self._lock is None:
            raise RuntimeError("MCP is served only while the app runs (its lifespan)")
        async with self._lock:
            if self._endpoint is None:
                module = await anyio.to_thread.run_sync(
                    importlib.import_module, "relaybus.server.mcp", abandon_on_cancel=True
                )
                c = self.context
                endpoint, runtime, manager = module.build(
                    c.service, c.config, auth=c.auth, hub=c.hub
                )
                runtime.session_host = self.session_host
                await self._tasks.start(self._run, manager)
                self.app.state.mcp = runtime
                self._endpoint = endpoint
        return self._endpoint

    async def _run(
        self, manager: StreamableHTTPSessionManager, *, task_status: TaskStatus[None]
    ) -> None:
        assert self._stop is not None
        async with manager.run():
            task_status.started()
            await self._stop.wait()
