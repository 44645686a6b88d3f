"""The event log over REST: read from a cursor (or long-poll for what comes next)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...bounds import TEXT_PATTERN, anchored
from ...models import Event
from ...service.events import MAX_EVENTS
from ...wire import CURSOR_BOUNDS, EVENT_LIST, LIMIT_BOUNDS, EventCursor
from ..auth import ApiCall
from ..problems import responses
from . import long_poll, make_router, render, render_list, wait_query

router = make_router(tags=["events"])


@router.get(
    "/v1/events",
    response_model=list[Event],
    responses=responses(400),
    summary="Read the event log from a cursor",
)
async def events(
    call: ApiCall,
    since: Annotated[
        int, Query(description="Only events above this id.", json_schema_extra=CURSOR_BOUNDS)
    ] = 0,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 100,
    kind: Annotated[
        list[Annotated[str, Field(max_length=200, pattern=anchored(TEXT_PATTERN))]] | None,
        Query(
            max_length=50,
            description="Only these kinds (repeatable); a kind ending in '.' is a family.",
        ),
    ] = None,
    wait: Annotated[
        float,
        wait_query(
            "With nothing to return, wait up to this many seconds (capped by the server) for an "
            "event."
        ),
    ] = 0,
) -> Response:
    """Events above ``since``, oldest first. Admin sees every event of the workspace;
    an agent token only those the agent may see (as on the stream)."""
    caller = await call.resolve()
    service, workspace, kinds = call.service, caller.workspace, kind or None
    hub = call.hub
    agent_id = caller.agent_id
    cursor = since

    def check() -> list[Event]:
        nonlocal cursor
        if agent_id is None:
            return service.events(workspace=workspace, since=since, limit=limit, kinds=kinds)
        # Filtered: scan forward in full pages until something is visible, so an
        # empty answer means "nothing more for you", not "a page of others' events".
        while True:
            page = service.events(workspace=workspace, since=cursor, limit=MAX_EVENTS, kinds=kinds)
            visible: list[Event] = hub.visible_to(agent_id, page, workspace) if page else []
            if visible:
                return visible[:limit]
            if len(page) < MAX_EVENTS:
                if page:
                    cursor = page[-1].id  # seen and invisible: not scanned again on a wake-up
                return []
            cursor = page[-1].id

    if wait <= 0:
        found = await run_in_threadpool(check)
    else:
        found = await long_poll(call, check, wait)
    return render_list(EVENT_LIST, found)


@router.get("/v1/events/last", response_model=EventCursor, responses=responses())
def last_event(call: ApiCall) -> Response:
    """The newest event id of the workspace: a cursor for "from now on"."""
    return render(EventCursor(id=call.service.last_event_id(workspace=call.caller().workspace)))
