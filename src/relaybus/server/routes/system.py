"""The server itself: health, readiness, info, metrics; and admin upkeep (sweep, prune)."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import Body as BodyParam
from fastapi import Header, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ... import __version__
from ...errors import RelayError
from ...models import PruneReport
from ...wire import Health, Info, PruneBody, Ready, SweepReport
from ..auth import ApiCall, bearer_token
from ..metrics import CONTENT_TYPE
from ..problems import problem, responses
from ..sweeper import REPLICA
from . import make_router, render

logger = logging.getLogger("relaybus.server")
router = make_router()

_OK = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'


@router.get("/healthz", response_model=Health, tags=["system"])
async def healthz() -> Response:
    """The process is up (says nothing about the store: see /readyz)."""
    return Response(_OK, media_type="application/json")


@router.get("/readyz", response_model=Ready, tags=["system"], responses={503: responses()[503]})
async def readyz(request: Request) -> Response:
    """The store can be read: 200, else 503."""
    service = request.app.state.context.service
    try:
        await run_in_threadpool(service.log_head)
    except (RelayError, SQLAlchemyError, OSError) as exc:
        logger.warning("not ready: %s", exc)
        return problem(503, f"the store cannot be read: {type(exc).__name__}: {exc}")
    return Response(_READY, media_type="application/json")


@router.get(
    "/metrics",
    tags=["system"],
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: responses(401)[401],
    },
)
def metrics(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Response:
    """Prometheus metrics (text exposition format). On a server with an admin or a
    metrics token it needs one of them (``Authorization: Bearer``)."""
    context = request.app.state.context
    context.auth.check_metrics(bearer_token(authorization))
    context.metrics.refresh(context.service)
    return Response(context.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/info", response_model=Info, tags=["system"], responses=responses())
def info(call: ApiCall, request: Request) -> Response:
    """Version, backend, uptime and auth mode; and who this token acts as."""
    caller = call.caller()
    return render(
        Info(
            version=__version__,
            backend=call.service.store.dialect,
            replica=REPLICA,
            uptime_seconds=round(time.monotonic() - request.app.state.started_at, 3),
            workspace=caller.workspace,
            auth=call.config.auth_mode,
            agent=caller.agent_id,
        )
    )


@router.post("/v1/sweep", response_model=SweepReport, tags=["admin"], responses=responses())
def sweep(call: ApiCall) -> Response:
    """Persist what time decided: stale agents go offline, lapsed leases reopen (admin)."""
    caller = call.caller()
    caller.require_admin("sweep")
    return render(SweepReport(**call.service.sweep(workspace=caller.workspace)))


@router.post("/v1/prune", response_model=PruneReport, tags=["admin"], responses=responses(400, 413))
def prune(call: ApiCall, body: Annotated[PruneBody | None, BodyParam()] = None) -> Response:
    """Delete old messages and events, and long-gone agents (admin). Tasks are kept."""
    caller = call.caller()
    caller.require_admin("prune")
    body = body or PruneBody()
    report = call.service.prune(
        workspace=caller.workspace, message_days=body.message_days, agent_days=body.agent_days
    )
    if report.agents:
        call.context.auth.cache.forget(caller.workspace)  # pruned agents' tokens are gone
    return render(report)
