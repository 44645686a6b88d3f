"""Message and inbox calls: send, send_many, get, thread, inbox, wait, mark_read,
unread_count, and delivery receipts: mark_delivered, deliveries, wait_deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ...models import Delivery, DeliveryState, Message, Priority, Via
from ...wire import (
    DELIVERY_LIST,
    MESSAGE_LIST,
    BatchBody,
    Draft,
    MarkDelivered,
    MarkRead,
    SendBody,
    request_body,
    unchecked,
)
from ..transport import Call
from .base import (
    _agent_path,
    _get,
    _list,
    _marked,
    _object,
    _priority,
    _segment,
    _unread,
    _via,
    _waiting,
)


def send(
    sender: str,
    to: str | None,
    body: str,
    *,
    workspace: str,
    epoch: int | None = None,
    subject: str | None = None,
    channel: str | None = None,
    reply_to: int | None = None,
    priority: Priority | str = Priority.NORMAL,
    meta: Mapping[str, Any] | None = None,
    claimable: bool = False,
    idempotency_key: str | None = None,
) -> Call[Message]:
    """``POST /v1/messages``, with an ``Idempotency-Key``: ``idempotency_key``, or a
    fresh uuid4 for this one logical send, which the transport's retries reuse (an
    embedded service gets only the caller's key)."""

    def fields() -> dict[str, Any]:
        """The JSON body, built only for HTTP (``claimable`` left out when false)."""
        found = request_body(
            unchecked(SendBody)(
                sender=sender,
                to=to,
                body=body,
                subject=subject,
                channel=channel,
                reply_to=reply_to,
                priority=_priority(priority),
                meta=_object(meta),
                claimable=claimable,
            )
        )
        if not claimable:
            del found["claimable"]  # the default: clients leave it out
        return found

    return Call(
        method="POST",
        path="/v1/messages",
        parse=Message.model_validate_json,
        local=lambda s: s.send(
            sender,
            to,
            body,
            workspace=workspace,
            epoch=epoch,
            subject=subject,
            channel=channel,
            reply_to=reply_to,
            priority=priority,
            meta=meta,
            claimable=claimable,
            idempotency_key=idempotency_key,
        ),
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body=fields,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    )


def send_many(
    sender: str,
    items: Sequence[Mapping[str, Any]],
    *,
    workspace: str,
    epoch: int | None = None,
    idempotency_key: str | None = None,
) -> Call[list[Message]]:
    """``POST /v1/messages/batch`` (one transaction, all or nothing), with one
    ``Idempotency-Key`` for the batch, made as for :func:`send`."""
    return Call(
        method="POST",
        path="/v1/messages/batch",
        parse=MESSAGE_LIST.validate_json,
        local=lambda s: s.send_many(
            sender, items, workspace=workspace, epoch=epoch, idempotency_key=idempotency_key
        ),
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        # The items go as given (they are the caller's mappings, not typed drafts):
        # unknown keys reach the server, which refuses them.
        body=lambda: request_body(
            unchecked(BatchBody)(sender=sender, messages=[_draft(item) for item in items])
        ),
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    )


def get_message(message_id: int, *, workspace: str) -> Call[Message]:
    """``GET /v1/messages/{id}``."""
    return _get(
        f"/v1/messages/{_segment(message_id)}",
        Message.model_validate_json,
        lambda s: s.get_message(message_id, workspace=workspace),
        workspace=workspace,
    )


def thread(message_id: int, *, workspace: str) -> Call[list[Message]]:
    """``GET /v1/messages/{id}/thread``."""
    return _get(
        f"/v1/messages/{_segment(message_id)}/thread",
        MESSAGE_LIST.validate_json,
        lambda s: s.thread(message_id, workspace=workspace),
        workspace=workspace,
    )


def inbox(
    agent_id: str,
    *,
    workspace: str,
    unread_only: bool = True,
    newest_first: bool = True,
    since: int | None = None,
    limit: int = 50,
    mark_read: bool = False,
    epoch: int | None = None,
    via: Via | str | None = None,
) -> Call[list[Message]]:
    """``GET /v1/agents/{id}/inbox``."""
    return _get(
        _agent_path(agent_id, "/inbox"),
        MESSAGE_LIST.validate_json,
        lambda s: s.inbox(
            agent_id,
            workspace=workspace,
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=mark_read,
            epoch=epoch,
            via=via,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        params={
            "unread_only": unread_only,
            "newest_first": newest_first,
            "since": since,
            "limit": limit,
            "mark_read": mark_read,
            "via": via,
        },
    )


def wait(
    agent_id: str,
    timeout: float,
    *,
    workspace: str,
    since: int | None = None,
    limit: int = 50,
    mark_read: bool = False,
    epoch: int | None = None,
    via: Via | str | None = None,
) -> Call[list[Message]]:
    """One long-poll, ``GET /v1/agents/{id}/inbox?wait=timeout``: :func:`inbox`'s unread
    mail above ``since``, oldest first, as soon as there is some, or ``[]`` after
    ``timeout`` seconds. Callers split long waits (see ``LONGPOLL_CHUNK``)."""
    unread = inbox(
        agent_id,
        workspace=workspace,
        newest_first=False,
        since=since,
        limit=limit,
        mark_read=mark_read,
        epoch=epoch,
        via=via,
    )
    return _waiting(
        unread,
        timeout,
        lambda s, seconds: s.wait(
            agent_id,
            seconds,
            workspace=workspace,
            since=since,
            limit=limit,
            mark_read=mark_read,
            epoch=epoch,
            via=via,
        ),
    )


def mark_read(
    agent_id: str,
    *,
    workspace: str,
    ids: Sequence[int] | None = None,
    up_to: int | None = None,
    epoch: int | None = None,
    via: Via | str = Via.INBOX,
) -> Call[int]:
    """``POST /v1/agents/{id}/inbox/read`` → how many changed."""
    return Call(
        method="POST",
        path=_agent_path(agent_id, "/inbox/read"),
        parse=_marked,
        local=lambda s: s.mark_read(
            agent_id, workspace=workspace, ids=ids, up_to=up_to, epoch=epoch, via=via
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=lambda: request_body(unchecked(MarkRead)(ids=_list(ids), up_to=up_to, via=_via(via))),
    )


def mark_delivered(
    agent_id: str,
    ids: Sequence[int],
    *,
    via: Via | str,
    workspace: str,
    epoch: int | None = None,
) -> Call[int]:
    """``POST /v1/agents/{id}/inbox/delivered`` → how many changed."""
    return Call(
        method="POST",
        path=_agent_path(agent_id, "/inbox/delivered"),
        parse=_marked,
        local=lambda s: s.mark_delivered(agent_id, ids, via=via, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=lambda: request_body(unchecked(MarkDelivered)(ids=list(ids), via=_via(via))),
    )


def deliveries(message_id: int, *, workspace: str) -> Call[list[Delivery]]:
    """``GET /v1/messages/{id}/deliveries``."""
    return _get(
        f"/v1/messages/{_segment(message_id)}/deliveries",
        DELIVERY_LIST.validate_json,
        lambda s: s.deliveries(message_id, workspace=workspace),
        workspace=workspace,
    )


def wait_deliveries(
    message_id: int, state: DeliveryState | str, timeout: float, *, workspace: str
) -> Call[list[Delivery]]:
    """One long-poll, ``GET /v1/messages/{id}/deliveries?until=STATE&wait=timeout``:
    the receipts once every recipient reached ``state``, or as they are after
    ``timeout`` seconds. Callers split long waits (see ``LONGPOLL_CHUNK``)."""
    return _waiting(
        deliveries(message_id, workspace=workspace),
        timeout,
        lambda s, seconds: s.wait_deliveries(message_id, state, seconds, workspace=workspace),
        until=state,
    )


def unread_count(agent_id: str, *, workspace: str) -> Call[int]:
    """``GET /v1/agents/{id}/inbox/count``."""
    return _get(
        _agent_path(agent_id, "/inbox/count"),
        _unread,
        lambda s: s.unread_count(agent_id, workspace=workspace),
        workspace=workspace,
        agent=agent_id,
    )


def _draft(item: Mapping[str, Any]) -> Draft:
    return cast(Draft, dict(item))
