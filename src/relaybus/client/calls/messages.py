"""Message and inbox calls: send, send_many, get, thread, inbox, wait, mark_read,
unread_count, and delivery receipts: mark_delivered, deliveries, wait_deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...models import Delivery, DeliveryState, Message, Priority, Via
from ...wire import DELIVERY_LIST, MESSAGE_LIST
from .. import operations
from ..transport import Call
from .base import _call, _marked, _unread


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
    return _call(
        operations.send,
        Message.model_validate_json,
        lambda s: s.send,
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
    return _call(
        operations.send_many,
        MESSAGE_LIST.validate_json,
        lambda s: s.send_many,
        sender,
        items,
        workspace=workspace,
        epoch=epoch,
        idempotency_key=idempotency_key,
    )


def get_message(message_id: int, *, workspace: str) -> Call[Message]:
    """``GET /v1/messages/{id}``."""
    return _call(
        operations.get_message,
        Message.model_validate_json,
        lambda s: s.get_message,
        message_id,
        workspace=workspace,
    )


def thread(message_id: int, *, workspace: str) -> Call[list[Message]]:
    """``GET /v1/messages/{id}/thread``."""
    return _call(
        operations.thread,
        MESSAGE_LIST.validate_json,
        lambda s: s.thread,
        message_id,
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
    return _call(
        operations.inbox,
        MESSAGE_LIST.validate_json,
        lambda s: s.inbox,
        agent_id,
        workspace=workspace,
        unread_only=unread_only,
        newest_first=newest_first,
        since=since,
        limit=limit,
        mark_read=mark_read,
        epoch=epoch,
        via=via,
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
    return _call(
        operations.wait,
        MESSAGE_LIST.validate_json,
        lambda s: s.wait,
        agent_id,
        timeout,
        workspace=workspace,
        since=since,
        limit=limit,
        mark_read=mark_read,
        epoch=epoch,
        via=via,
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
    return _call(
        operations.mark_read,
        _marked,
        lambda s: s.mark_read,
        agent_id,
        workspace=workspace,
        ids=ids,
        up_to=up_to,
        epoch=epoch,
        via=via,
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
    return _call(
        operations.mark_delivered,
        _marked,
        lambda s: s.mark_delivered,
        agent_id,
        ids,
        via=via,
        workspace=workspace,
        epoch=epoch,
    )


def deliveries(message_id: int, *, workspace: str) -> Call[list[Delivery]]:
    """``GET /v1/messages/{id}/deliveries``."""
    return _call(
        operations.deliveries,
        DELIVERY_LIST.validate_json,
        lambda s: s.deliveries,
        message_id,
        workspace=workspace,
    )


def wait_deliveries(
    message_id: int, state: DeliveryState | str, timeout: float, *, workspace: str
) -> Call[list[Delivery]]:
    """One long-poll, ``GET /v1/messages/{id}/deliveries?until=STATE&wait=timeout``:
    the receipts once every recipient reached ``state``, or as they are after
    ``timeout`` seconds. Callers split long waits (see ``LONGPOLL_CHUNK``)."""
    return _call(
        operations.wait_deliveries,
        DELIVERY_LIST.validate_json,
        lambda s: s.wait_deliveries,
        message_id,
        state,
        timeout,
        workspace=workspace,
    )


def unread_count(agent_id: str, *, workspace: str) -> Call[int]:
    """``GET /v1/agents/{id}/inbox/count``."""
    return _call(
        operations.unread_count, _unread, lambda s: s.unread_count, agent_id, workspace=workspace
    )
