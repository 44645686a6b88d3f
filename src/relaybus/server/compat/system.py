"""The seed's server routes: stats and health; and its pair routes, which relaybus
does not serve yet (501 naming the issue that adds them).
"""

from __future__ import annotations

import time

from fastapi import Request
from starlette.responses import Response

from ... import __version__
from ..problems import problem
from .common import CompatCall, answer, make_compat_router
from .shapes import stats_view

router = make_compat_router()
#: Every method a pair route may be called with.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.get("/api/stats")
def stats(call: CompatCall, request: Request) -> Response:
    """Counts of the workspace's agents, messages and tasks, ``latestId``, the
    server's version and uptime (:func:`~.shapes.stats_view`)."""
    found = call.service.stats(workspace=call.caller().workspace)
    uptime = time.monotonic() - request.app.state.started_at
    return answer(stats_view(found, version=__version__, uptime=uptime))


@router.get("/api/health")
async def health() -> Response:
    """``{"ok": true, "status": "ok", "version"}``: the process is up (no token needed,
    as ``/healthz``; ``/readyz`` says whether the store answers)."""
    return answer({"ok": True, "status": "ok", "version": __version__})


@router.api_route("/api/pairs", methods=METHODS)
@router.api_route("/api/pairs/{rest:path}", methods=METHODS)
def pairs(call: CompatCall) -> Response:
    """Pair sessions (invite, accept, reject, pair messages, hang up) come with
    issue 17 (coordination); until then every pair route answers 501."""
    call.caller()
    return problem(
        501,
        "pairs (/api/pairs) are not served yet: they come with issue 17 (coordination: "
        "pairs, approval modes); send direct messages (POST /api/messages) meanwhile",
        title="not implemented",
    )
