"""The ASGI application: :func:`create_app` wires routes, auth, limits, metrics and the hub."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from .. import __version__
from ..service import Service
from ..settings import Settings
from . import mcp as mcp_http
from . import problems
from .auth import Authenticator, ServerContext
from .groups import SendGroups
from .hub import Hub
from .limits import BodyLimit, RateLimiter
from .metrics import Metrics, RequestMetrics
from .routes import agents, events, inbox, messages, stream, system, tasks, ws
from .sweeper import Sweeper

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
        )
        sweeper.start()
        try:
            async with mcp_sessions.run():  # MCP sessions end before the hub stops
                yield
        finally:
            await sweeper.stop()
            await hub.stop()

    app = FastAPI(
        title="relaybus",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
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
    for module in (messages, inbox, agents, tasks, events, system):
        app.include_router(module.router)
    app.include_router(stream.router)
    app.include_router(ws.router)
    mcp_sessions = mcp_http.mount(app, service, config, auth=auth, hub=hub)

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
