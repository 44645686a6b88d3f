"""The HTTP requests of listing messages, described once (as
:mod:`relaybus.client.operations` describes the rest): the messages a caller may see,
and the receipts of a page of them. Standard library only."""

from __future__ import annotations

from collections.abc import Sequence

from .request import Request


def list_messages(
    *,
    workspace: str,
    viewer: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    participant: str | None = None,
    channel: str | None = None,
    thread: int | None = None,
    to: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Request:
    """``GET /v1/messages``: newest first; ``viewer``: only what that agent may see."""
    params = {
        "agent": viewer,
        "sender": sender,
        "recipient": recipient,
        "participant": participant,
        "channel": channel,
        "thread": thread,
        "to": to,
        "tag": tag,
        "q": q,
        "before": before,
        "limit": limit,
    }
    return Request("GET", "/v1/messages", workspace=workspace, agent=viewer, params=params)


def receipts(ids: Sequence[int], *, workspace: str, viewer: str | None = None) -> Request:
    """``GET /v1/messages/receipts?ids=…``; ``viewer`` as for :func:`list_messages`."""
    params = {"ids": list(ids), "agent": viewer}
    return Request("GET", "/v1/messages/receipts", workspace=workspace, agent=viewer, params=params)
