"""Inboxes: read (or long-poll) an agent's deliveries, record them delivered or
read, count unread.

Only the agent itself (or admin) may read an inbox. The app includes this
router before the agents router: ``/v1/agents/{agent_id}`` takes ids with
``/``, so the longer inbox paths must match first.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...models import Message, Via
from ...wire import (
    CURSOR_BOUNDS,
    LIMIT_BOUNDS,
    MESSAGE_LIST,
    MarkDelivered,
    Marked,
    MarkRead,
    UnreadCount,
)
from ..auth import ApiCall, Epoch
from ..problems import responses
from . import AgentPath, long_poll, make_router, render, render_list, wait_query

router = make_router(tags=["inbox"])


@router.get(
    "/v1/agents/{agent_id:path}/inbox",
    response_model=list[Message],
    responses=responses(400, 404, 409),
    summary="Read an inbox, or wait for mail",
)
async def inbox(
    agent_id: AgentPath,
    call: ApiCall,
    epoch: Epoch = None,
    unread_only: bool = True,
    newest_first: bool = True,
    since: Annotated[
        int | None,
        Query(description="Only messages with an id above this.", json_schema_extra=CURSOR_BOUNDS),
    ] = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 50,
    mark_read: Annotated[bool, Query(description="Mark the returned messages read.")] = False,
    via: Annotated[
        Via | None,
        Query(
            description="This read hands the messages to the agent's session: record the "
            "queued ones delivered by this path. Leave it out for a look that is not the agent's."
        ),
    ] = None,
    wait: Annotated[
        float,
        wait_query(
            "Long-poll: with nothing matching, wait up to this many seconds (capped by the "
            "server) for a message; the answer is then oldest first."
        ),
    ] = 0,
) -> Response:
    """Messages delivered to the agent with their recipients, and ``read_at`` and
    ``delivered_at`` as this call left them."""
    caller = await call.resolve()
    me = caller.act_as(agent_id)
    service, workspace = call.service, caller.workspace
    # The same query, read at once (as asked) or, for a long-poll, its unread part
    # oldest first, re-checked until something matches.
    query = partial(
        service.inbox, me, workspace=workspace, unread_only=unread_only, since=since, limit=limit
    )
    if wait <= 0:
        found = await run_in_threadpool(
            query, newest_first=newest_first, mark_read=mark_read, epoch=epoch, via=via
        )
        return render_list(MESSAGE_LIST, found)

    def check() -> list[Message]:
        return query(newest_first=False)

    found = await long_poll(call, check, wait)
    # Marked after the wait, not inside the check: a write there would wake
    # every waiter, this one included, on each re-check.
    if found and (mark_read or via is not None):
        found = await run_in_threadpool(
            lambda: service.hand_over(
                me, found, workspace=workspace, mark_read=mark_read, via=via, epoch=epoch
            )
        )
    return render_list(MESSAGE_LIST, found)


@router.post(
    "/v1/agents/{agent_id:path}/inbox/read",
    response_model=Marked,
    responses=responses(400, 404, 409, 413),
)
def mark_read(agent_id: AgentPath, body: MarkRead, call: ApiCall, epoch: Epoch = None) -> Response:
    """Mark deliveries read, by message ids or up to a cursor (exactly one of them)."""
    caller = call.caller()
    changed = call.service.mark_read(
        caller.act_as(agent_id),
        workspace=caller.workspace,
        ids=body.ids,
        up_to=body.up_to,
        epoch=epoch,
        via=body.via,
    )
    return render(Marked(marked=changed))


@router.post(
    "/v1/agents/{agent_id:path}/inbox/delivered",
    response_model=Marked,
    responses=responses(400, 404, 409, 413),
)
def mark_delivered(
    agent_id: AgentPath, body: MarkDelivered, call: ApiCall, epoch: Epoch = None
) -> Response:
    """Record that messages reached the agent's session (typed into its terminal,
    shown by a hook, pushed on a stream it acknowledged…): queued → delivered.
    Deliveries already delivered or read stay as they are."""
    caller = call.caller()
    changed = call.service.mark_delivered(
        caller.act_as(agent_id), body.ids, via=body.via, workspace=caller.workspace, epoch=epoch
    )
    return render(Marked(marked=changed))


@router.get(
    "/v1/agents/{agent_id:path}/inbox/count", response_model=UnreadCount, responses=responses(404)
)
def unread_count(agent_id: AgentPath, call: ApiCall) -> Response:
    """How many of the agent's deliveries are unread."""
    caller = call.caller()
    count = call.service.unread_count(caller.act_as(agent_id), workspace=caller.workspace)
    return render(UnreadCount(unread=count))
