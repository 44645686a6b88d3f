"""History for late joiners: ``GET /v1/history``, the broadcasts sent before an agent
registered (see :mod:`relaybus.service.history`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...models import Message
from ...wire import ID_BOUNDS, LIMIT_BOUNDS, MESSAGE_LIST
from ..auth import ApiCall
from ..problems import responses
from . import make_router, render_list
from .stream import viewer_of

router = make_router(tags=["messages"])


@router.get("/v1/history", response_model=list[Message], responses=responses(400, 404))
def history(
    call: ApiCall,
    agent: Annotated[
        str | None,
        Query(
            pattern=anchored(NAME_PATTERN),
            description="Read as this agent: only broadcasts on channels it hears (an "
            "agent token always reads as its own agent).",
        ),
    ] = None,
    channel: Annotated[
        str | None,
        Query(pattern=anchored(NAME_PATTERN), description="Only the broadcasts on this channel."),
    ] = None,
    broadcast: Annotated[
        bool,
        Query(description="Only the workspace-wide broadcasts (those without a channel)."),
    ] = False,
    before: Annotated[
        int | None, Query(json_schema_extra=ID_BOUNDS, description="Only older ids (a page).")
    ] = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 50,
) -> Response:
    """The workspace's broadcasts, newest first, whenever they were sent: what an agent
    that joined late missed. Nothing enters an inbox. An agent reads those without a
    channel or on a channel it hears (403 for a channel it does not hear)."""
    caller = call.caller()
    found = call.service.history(
        viewer_of(caller, agent),
        workspace=caller.workspace,
        channel=channel,
        broadcast=broadcast,
        before=before,
        limit=limit,
    )
    return render_list(MESSAGE_LIST, found)
