"""The seed's message routes: send, get, thread, mark read (``PATCH {readBy}``),
and the cursor a poller starts from. Answers are :func:`~.shapes.message_view`\\s.

A send goes through the same group commit as ``POST /v1/messages`` (so live
streams and metrics see it alike); claiming a claimable message is in
:mod:`.claims`, reading an inbox in :mod:`.inbox`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header
from pydantic import Field
from starlette.responses import Response

from ...models import Priority
from ...service.messages import GroupSend
from ..auth import ApiRequest, Caller
from ..routes import IDEMPOTENCY_HEADER, IdPath, key_from_header
from ..routes.messages import send_as_integration
from .common import AgentName, CompatCall, SeedBody, answer, json_body, make_compat_router
from .shapes import message_view

router = make_compat_router()


class SeedSend(SeedBody):
    """A message as the seed's clients send it. ``type`` (or the client library's
    ``kind``) and ``payload`` are kept in ``meta`` (``meta.type``, ``meta.payload``);
    ``idempotencyKey`` is the ``Idempotency-Key`` of ``/v1`` (the header works too)."""

    sender: AgentName | None = Field(default=None, alias="from")
    to: str | None = None
    body: str
    subject: str | None = None
    channel: str | None = None
    reply_to: int | None = None
    priority: Priority = Priority.NORMAL
    claimable: bool = False
    meta: dict[str, Any] | None = None
    type: str | None = None
    kind: str | None = None
    payload: Any = None
    idempotency_key: str | None = None
    epoch: int | None = Field(default=None, ge=0)

    def relay_meta(self) -> dict[str, Any] | None:
        """``meta`` with ``type`` and ``payload`` added (when given and not in it)."""
        kind = self.type or self.kind
        if kind is None and self.payload is None:
            return self.meta
        meta = dict(self.meta or {})
        if kind is not None:
            meta.setdefault("type", kind)
        if self.payload is not None:
            meta.setdefault("payload", self.payload)
        return meta


class SeedRead(SeedBody):
    """``PATCH /api/messages/{id}``: the agent that read the message."""

    read_by: AgentName
    epoch: int | None = Field(default=None, ge=0)


@router.post("/api/messages", status_code=201)
def send(
    body: Annotated[SeedSend, json_body(SeedSend)],
    call: CompatCall,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> Response:
    """Send a message from ``from`` (an agent token: its own agent, ``from`` may be
    left out; an integration's token with ``messages:send``: from ``integration:NAME``,
    to its allowed targets) to ``to``; 201 with the stored message and its
    ``recipients``. An unknown target is 404 with a reason, never a silent drop."""
    caller = call.caller(integrations=True)
    if caller.integration is not None:
        return _send_as_integration(body, call, caller, idempotency_key)
    message = call.context.sends.send(
        GroupSend(
            caller.act_as(body.sender, "from"),
            body.to,
            body.body,
            workspace=caller.workspace,
            epoch=body.epoch,
            subject=body.subject,
            channel=body.channel,
            reply_to=body.reply_to,
            priority=body.priority,
            meta=body.relay_meta(),
            claimable=body.claimable,
            idempotency_key=body.idempotency_key or key_from_header(idempotency_key),
        )
    )
    return answer(message_view(message), 201)


def _send_as_integration(
    body: SeedSend, call: ApiRequest, caller: Caller, idempotency_key: str | None
) -> Response:
    message = send_as_integration(
        call,
        caller,
        sender=body.sender,
        to=body.to,
        body=body.body,
        subject=body.subject,
        channel=body.channel,
        reply_to=body.reply_to,
        priority=body.priority,
        meta=body.relay_meta(),
        claimable=body.claimable,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    return answer(message_view(message), 201)


@router.get("/api/messages/cursor")
def cursor(call: CompatCall) -> Response:
    """``{"latestId": n}``: the newest message id of the workspace; a client that
    polls from it sees only what is sent after."""
    latest = call.service.latest_message_id(workspace=call.caller().workspace)
    return answer({"latestId": latest})


@router.get("/api/messages/{message_id:id}")
def get_message(message_id: IdPath, call: CompatCall) -> Response:
    """One message (an agent token: one it sent or received; any other is 404)."""
    caller = call.caller()
    message = call.service.get_message(
        message_id, workspace=caller.workspace, viewer=caller.agent_id
    )
    return answer(message_view(message))


@router.get("/api/messages/{message_id:id}/thread")
def thread(message_id: IdPath, call: CompatCall) -> Response:
    """The message's thread, oldest first (an agent token: the messages it sent or
    received)."""
    caller = call.caller()
    found = call.service.thread(message_id, workspace=caller.workspace, viewer=caller.agent_id)
    return answer([message_view(m) for m in found])


@router.patch("/api/messages/{message_id:id}")
def mark_read(
    message_id: IdPath, body: Annotated[SeedRead, json_body(SeedRead)], call: CompatCall
) -> Response:
    """Mark the message read for ``readBy`` only (one agent reading never hides it
    from another): ``{"ok": true, "id", "readBy", "marked"}``, ``marked`` 0 when
    it was read already or is not in that agent's inbox."""
    caller = call.caller()
    reader = caller.act_as(body.read_by, "readBy")
    marked = call.service.mark_read(
        reader, workspace=caller.workspace, ids=[message_id], epoch=body.epoch
    )
    return answer({"ok": True, "id": message_id, "readBy": reader, "marked": marked})
