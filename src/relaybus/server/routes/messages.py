"""Messages: send one, send a batch, list them, get one, get its thread, get its receipts
(one message's, or a page's at once)."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...bounds import NAME_PATTERN, TARGET_PATTERN, TEXT_PATTERN, anchored
from ...errors import InvalidInput
from ...models import Delivery, DeliveryState, Message
from ...service.message_list import MAX_QUERY_CHARS
from ...service.messages import GroupSend
from ...wire import (
    DELIVERY_LIST,
    ID_BOUNDS,
    LIMIT_BOUNDS,
    MAX_IDS,
    MESSAGE_LIST,
    BatchBody,
    MessageId,
    SendBody,
)
from ..auth import ApiCall, ApiRequest, Caller, Epoch
from ..problems import responses
from . import (
    IdempotencyKey,
    IdPath,
    key_from_header,
    lean_post,
    long_poll,
    loop_twin,
    make_router,
    render,
    render_list,
    wait_query,
)
from .stream import viewer_of

router = make_router(tags=["messages"])
#: Test-only fault injection, off unless set: a send or batch with this idempotency key
#: makes the server SIGKILL itself right after the commit, before the reply (the cluster
#: tests' "replica died between commit and reply").
KILL_AFTER_COMMIT = os.environ.get("RELAYBUS_TEST_KILL_AFTER_COMMIT")


@lean_post(
    router,
    "/v1/messages",
    status_code=201,
    response_model=Message,
    responses=responses(400, 404, 409, 413),
    summary="Send a message",
)
def send(
    body: SendBody, call: ApiCall, epoch: Epoch = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """Send a message; every recipient has it in its inbox once this returns.

    With an ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header), a retry
    from the same sender within 24 h gets the original answer, 201 and the same
    message, and stores nothing; the same key with another request is 409.

    Concurrent sends are committed together (:mod:`relaybus.server.groups`): each
    still answers after the commit that stored it, with its own message or error.
    """
    caller = call.caller(integrations=True)
    if caller.integration is not None:
        return _send_as_integration(body, call, caller, idempotency_key)
    message = call.context.sends.send(_group_send(body, caller, epoch, idempotency_key))
    return render(message, 201)


@loop_twin(send)
async def send_on_loop(
    body: SendBody, call: ApiCall, epoch: Epoch = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """:func:`send` on the event loop (the lean path's): the group commit stores it
    from another thread, so no worker thread waits for each send."""
    caller = await call.resolve(integrations=True)
    if caller.integration is not None:
        return await run_in_threadpool(_send_as_integration, body, call, caller, idempotency_key)
    message = await call.context.sends.asend(_group_send(body, caller, epoch, idempotency_key))
    return render(message, 201)


def _send_as_integration(
    body: SendBody, call: ApiRequest, caller: Caller, idempotency_key: str | None
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
        meta=body.meta,
        claimable=body.claimable,
        idempotency_key=idempotency_key,
    )
    return render(message, 201)


def send_as_integration(
    call: ApiRequest,
    caller: Caller,
    *,
    sender: str | None,
    to: str | None,
    body: str,
    subject: str | None,
    channel: str | None,
    reply_to: int | None,
    priority: str,
    meta: dict[str, Any] | None,
    claimable: bool,
    idempotency_key: str | None,
) -> Message:
    """An integration's send (its token, scope ``messages:send``) as
    ``integration:NAME``, outside the group commit (which fences agents; an
    integration's sends are rare next to theirs), published to live streams.

    Raises:
        Forbidden: no ``messages:send``; ``sender`` names an agent.
        InvalidInput: an idempotency key (agents' sends only).
    """
    assert caller.integration is not None
    caller.require_scope("messages:send")
    if sender is not None:
        caller.act_as(sender, "sender")  # raises: an integration is no agent
    if idempotency_key is not None:
        raise InvalidInput("an integration's send takes no Idempotency-Key")
    message = call.service.send_from_integration(
        caller.integration,
        to,
        body,
        workspace=caller.workspace,
        subject=subject,
        channel=channel,
        reply_to=reply_to,
        priority=priority,
        meta=meta,
        claimable=claimable,
    )
    call.hub.publish([message])
    call.metrics.messages_sent.inc()
    return message


def _group_send(
    body: SendBody, caller: Caller, epoch: int | None, idempotency_key: str | None
) -> GroupSend:
    # What send and send_on_loop queue (raises Forbidden as Caller.act_as does).
    return GroupSend(
        caller.act_as(body.sender, "sender"),
        body.to,
        body.body,
        workspace=caller.workspace,
        epoch=epoch,
        subject=body.subject,
        channel=body.channel,
        reply_to=body.reply_to,
        priority=body.priority,
        meta=body.meta,
        claimable=body.claimable,
        idempotency_key=key_from_header(idempotency_key),
    )


@lean_post(
    router,
    "/v1/messages/batch",
    status_code=201,
    response_model=list[Message],
    responses=responses(400, 404, 409, 413),
    summary="Send several messages in one transaction",
)
def send_batch(
    body: BatchBody, call: ApiCall, epoch: Epoch = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """Send 1-500 messages from one sender, all or none, in order. An
    ``Idempotency-Key`` covers the whole batch: a retry gets the original messages."""
    caller = call.caller()
    key = key_from_header(idempotency_key)
    sent = call.service.send_many(
        caller.act_as(body.sender, "sender"),
        [draft.model_dump(exclude_unset=True) for draft in body.messages],
        workspace=caller.workspace,
        epoch=epoch,
        idempotency_key=key,
    )
    if key is not None and key == KILL_AFTER_COMMIT:
        os.kill(os.getpid(), signal.SIGKILL)
    call.hub.publish(sent)
    call.metrics.messages_sent.inc(len(sent))
    return render_list(MESSAGE_LIST, sent, 201)


@router.get("/v1/messages/{message_id:id}", response_model=Message, responses=responses(400, 404))
def get_message(message_id: IdPath, call: ApiCall) -> Response:
    """One message with its recipients (an agent token: one it sent or received;
    any other is 404, like a missing id)."""
    caller = call.caller()
    message = call.service.get_message(
        message_id, workspace=caller.workspace, viewer=caller.agent_id
    )
    return render(message)


@router.get(
    "/v1/messages/{message_id:id}/thread",
    response_model=list[Message],
    responses=responses(400, 404),
)
def thread(message_id: IdPath, call: ApiCall) -> Response:
    """Every message of the thread ``message_id`` belongs to, oldest first (an agent
    token: ``message_id`` must be one it sent or received, and the thread shows only
    those of its messages it sent or received)."""
    caller = call.caller()
    found = call.service.thread(message_id, workspace=caller.workspace, viewer=caller.agent_id)
    return render_list(MESSAGE_LIST, found)


@router.get(
    "/v1/messages/{message_id:id}/deliveries",
    response_model=list[Delivery],
    responses=responses(400, 404),
    summary="Each recipient's receipt, or wait for delivered/read",
)
async def deliveries(
    message_id: IdPath,
    call: ApiCall,
    until: Annotated[
        DeliveryState | None,
        Query(description="With wait: the state every recipient must reach."),
    ] = None,
    wait: Annotated[
        float,
        wait_query(
            "Long-poll: wait up to this many seconds (capped by the server) for every recipient "
            "to reach `until`; the receipts are returned as they are then."
        ),
    ] = 0,
) -> Response:
    """Where the message is for each recipient: queued, delivered (when, and by
    which path: inbox, stream, mcp, hook, pty, tmux) or read (an agent token: a
    message it sent or received; any other is 404, like a missing id)."""
    caller = await call.resolve()
    service, workspace, viewer = call.service, caller.workspace, caller.agent_id

    def receipts() -> list[Delivery]:
        return service.deliveries(message_id, workspace=workspace, viewer=viewer)

    if until is None or wait <= 0:
        return render_list(DELIVERY_LIST, await run_in_threadpool(receipts))
    goal = until

    def check() -> list[Delivery] | None:
        found = receipts()
        return found if all(d.state.reached(goal) for d in found) else None

    done = await long_poll(call, check, wait)
    if done is None:
        done = await run_in_threadpool(receipts)
    return render_list(DELIVERY_LIST, done)


def _name(description: str) -> Any:
    # A query parameter naming an agent, a channel or a tag.
    return Query(pattern=anchored(NAME_PATTERN), description=description)


@router.get("/v1/messages", response_model=list[Message], responses=responses(400, 403))
def list_messages(
    call: ApiCall,
    agent: Annotated[
        str | None,
        _name(
            "Read as this agent: only the messages it sent or received (an agent token "
            "always reads as its own agent and may name only itself)."
        ),
    ] = None,
    sender: Annotated[str | None, _name("Only those this agent sent.")] = None,
    recipient: Annotated[str | None, _name("Only those delivered to this agent.")] = None,
    participant: Annotated[
        str | None, _name("Only those this agent sent or was delivered.")
    ] = None,
    channel: Annotated[str | None, _name("Only those sent on this channel.")] = None,
    thread: Annotated[
        int | None,
        Query(json_schema_extra=ID_BOUNDS, description="Only the thread with this root id."),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            pattern=anchored(TARGET_PATTERN),
            description="Only those sent to exactly this target expression (bob, "
            "tag:backend, cap:review, label:TEXT, broadcast).",
        ),
    ] = None,
    tag: Annotated[str | None, _name("Only those sent to tag:TAG.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_CHARS,
            pattern=anchored(TEXT_PATTERN),
            description="Only those whose subject or body holds this text (case-insensitive).",
        ),
    ] = None,
    before: Annotated[
        int | None, Query(json_schema_extra=ID_BOUNDS, description="Only older ids (a page).")
    ] = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 50,
) -> Response:
    """The messages the caller may see, newest first, each with its recipients: an
    admin's are the workspace's, an agent token's those its agent sent or received
    (the visibility rule). Every filter given must hold; page with ``before`` (the
    last id of the previous page)."""
    caller = call.caller()
    found = call.service.list_messages(
        workspace=caller.workspace,
        viewer=viewer_of(caller, agent),
        sender=sender,
        recipient=recipient,
        participant=participant,
        channel=channel,
        thread=thread,
        to=to,
        tag=tag,
        q=q,
        before=before,
        limit=limit,
    )
    return render_list(MESSAGE_LIST, found)


@router.get(
    "/v1/messages/receipts",
    response_model=list[Delivery],
    responses=responses(400, 403),
    summary="The receipts of several messages at once",
)
def receipts(
    call: ApiCall,
    ids: Annotated[
        list[MessageId],
        Query(max_length=MAX_IDS, description="The messages (repeat: ids=1&ids=2)."),
    ],
    agent: Annotated[
        str | None, _name("Read as this agent: only for messages it sent or received.")
    ] = None,
) -> Response:
    """Each recipient's receipt of each message among ``ids`` the caller may see, by
    message id then agent id (a page's "2/3 read"); a message that does not exist or
    that an agent token may not see has none, alike."""
    caller = call.caller()
    found = call.service.receipts(ids, workspace=caller.workspace, viewer=viewer_of(caller, agent))
    return render_list(DELIVERY_LIST, found)
