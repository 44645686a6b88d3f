"""Reading an agent's mail the seed's ways: its poll (``GET /api/messages?agentId=
&since=``: every message to the agent above a cursor) and its inbox
(``GET /api/agents/{id}/inbox``: the unread ones). Both answer oldest first, can
mark what they return read (``markRead=true``) and can wait for mail
(``wait=SECONDS``, a long-poll capped by the server, as ``/v1``'s inbox).

Only the agent itself (an agent token) or admin may read an inbox.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...models import Message
from ...wire import CURSOR_BOUNDS, LIMIT_BOUNDS
from ..auth import ApiRequest
from ..routes import AgentPath, long_poll, wait_query
from .common import AgentQuery, CompatCall, answer, make_compat_router
from .shapes import message_view

router = make_compat_router()

Since = Annotated[int | None, Query(json_schema_extra=CURSOR_BOUNDS)]
Limit = Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)]
MarkRead = Annotated[bool, Query(alias="markRead")]
Wait = Annotated[float, wait_query("With nothing to answer, wait up to this many seconds.")]


@router.get("/api/messages")
async def poll(
    call: CompatCall,
    agent_id: AgentQuery = None,
    since: Since = None,
    limit: Limit = 50,
    unread: bool = False,
    mark_read: MarkRead = False,
    wait: Wait = 0,
) -> Response:
    """Messages delivered to ``agentId`` (an agent token: its own, which may be left
    out) with an id above ``since``, read or not unless ``unread=true``."""
    return await _read(call, agent_id, unread, since, limit, mark_read, wait)


@router.get("/api/agents/{agent_id:path}/inbox")
async def inbox(
    agent_id: AgentPath,
    call: CompatCall,
    since: Since = None,
    limit: Limit = 50,
    unread: bool = True,
    mark_read: MarkRead = False,
    wait: Wait = 0,
) -> Response:
    """The agent's unread messages (``unread=false``: all of them), above ``since``."""
    return await _read(call, agent_id, unread, since, limit, mark_read, wait)


@router.get("/api/agents/{agent_id:path}/unread")
def unread_count(agent_id: AgentPath, call: CompatCall) -> Response:
    """``{"agentId", "unread"}``: how many of the agent's messages are unread
    (counted up to 1,000)."""
    caller = call.caller()
    me = caller.act_as(agent_id)
    return answer(
        {"agentId": me, "unread": call.service.unread_count(me, workspace=caller.workspace)}
    )


async def _read(
    call: ApiRequest,
    agent_id: str | None,
    unread: bool,
    since: int | None,
    limit: int,
    mark_read: bool,
    wait: float,
) -> Response:
    caller = await call.resolve()
    me = caller.act_as(agent_id, "agentId")
    service, workspace = call.service, caller.workspace
    query = partial(
        service.inbox,
        me,
        workspace=workspace,
        unread_only=unread,
        newest_first=False,
        since=since,
        limit=limit,
    )
    found: list[Message]
    if wait <= 0:
        found = await run_in_threadpool(partial(query, mark_read=mark_read))
    else:
        found = await long_poll(call, query, wait)
        # Marked after the wait, not in the check: a write there would wake every
        # waiter, this one included, on each re-check (as /v1's inbox does).
        if found and mark_read:
            found = await run_in_threadpool(
                partial(service.hand_over, me, found, workspace=workspace, mark_read=True)
            )
    return answer([message_view(m) for m in found])
