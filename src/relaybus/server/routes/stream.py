"""``GET /v1/stream``: the event log as Server-Sent Events, live.

The first frame is ``event: ready`` with ``data: {"last_event_id": N}``;
then one frame per event the caller may see (``id:`` the event id,
``event:`` its kind, ``data:`` the event as JSON, with the full message on
``message.sent``), and a ``: ping`` comment every
``Settings.sse_heartbeat_seconds`` of silence so proxies keep it open.

Resuming: the ``Last-Event-ID`` header (sent by ``EventSource`` on
reconnect) or ``?since=`` replays what was missed from the log, then goes
live with no gap and no duplicate; without either the stream starts now.
The stream ends when the server shuts down or the client falls too far
behind (see :class:`~relaybus.server.hub.Hub`); reconnect with the last id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ...errors import Forbidden, InvalidInput
from ..auth import MAX_ID, ApiCall, Caller
from ..hub import Hub, Subscription
from ..problems import responses

router = APIRouter()

#: Heartbeat interval (seconds) when the app has no settings.
DEFAULT_HEARTBEAT_SECONDS = 15.0
PING = b": ping\n\n"


@router.get(
    "/v1/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **responses(400),
    },
    summary="Live events (Server-Sent Events)",
)
async def stream(
    request: Request,
    call: ApiCall,
    since: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Resume after this event id.")
    ] = None,
    agent: Annotated[
        str | None, Query(description="Watch as this agent (admin; an agent may name itself).")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Events the caller may see, from ``Last-Event-ID`` / ``?since=`` or from now.

    Raises:
        Forbidden: an agent token naming another agent in ``?agent=``.
        InvalidInput: a ``Last-Event-ID`` that is not an event id.
    """
    caller = await call.resolve()
    viewer = viewer_of(caller, agent or None)
    cursor = since
    if last_event_id is not None and last_event_id.strip():
        # The header wins: EventSource re-sends it on reconnect while ?since= stays in the URL.
        try:
            cursor = int(last_event_id)
        except ValueError:
            raise InvalidInput(
                f"Last-Event-ID {last_event_id!r} is not an event id", field="Last-Event-ID"
            ) from None
        if not 0 <= cursor <= MAX_ID:
            raise InvalidInput(
                f"Last-Event-ID must be between 0 and {MAX_ID}", field="Last-Event-ID"
            )
    hub: Hub = request.app.state.hub
    config = getattr(request.app.state, "config", None)
    heartbeat = getattr(config, "sse_heartbeat_seconds", DEFAULT_HEARTBEAT_SECONDS)
    sub = hub.subscribe(caller.workspace, viewer, "sse")
    return EventStreamResponse(hub, sub, cursor, heartbeat)


def viewer_of(caller: Caller, agent: str | None) -> str | None:
    """Whose view of the log a stream shows: ``None`` for an admin watching the
    whole workspace, else an agent id (the token's own agent, or the agent an
    admin names with ``?agent=``).

    Raises:
        Forbidden: an agent token naming another agent.
    """
    if caller.admin:
        return agent
    if agent is not None and agent != caller.agent_id:
        raise Forbidden(
            f"this token acts as {caller.agent_id!r} and cannot watch as {agent!r}",
            agent=agent,
        )
    return caller.agent_id


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response over a hub subscription; it unsubscribes when
    the response ends, however it ends (client gone, shutdown, error)."""

    def __init__(self, hub: Hub, sub: Subscription, cursor: int | None, heartbeat: float) -> None:
        super().__init__(
            _frames(hub, sub, cursor, heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.hub = hub
        self.sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.unsubscribe(self.sub)


async def _frames(
    hub: Hub, sub: Subscription, cursor: int | None, heartbeat: float
) -> AsyncIterator[bytes]:
    ready = json.dumps({"last_event_id": sub.start})
    yield f"event: ready\ndata: {ready}\n\n".encode()
    sent = sub.start if cursor is None else cursor
    async for items in hub.replay(sub, sent):
        yield b"".join(item.sse for item in items)
        sent = items[-1].id
    while True:
        batch = await sub.get(heartbeat)
        if batch is None:
            return
        if not batch:
            yield PING
            continue
        # Live events all follow sub.start; a cursor from further on skips some.
        fresh = [item.sse for item in batch if item.id > sent]
        if fresh:
            sent = batch[-1].id
            yield b"".join(fresh)
