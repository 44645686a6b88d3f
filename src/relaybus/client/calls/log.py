"""Event-log and retention calls: events, wait_events, last_event_id, prune."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import Event, PruneReport
from ...wire import EVENT_LIST, EventCursor, PruneBody, request_body, unchecked
from ..transport import Call
from .base import _get, _waiting


def events(
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Call[list[Event]]:
    """``GET /v1/events``."""
    return _get(
        "/v1/events",
        EVENT_LIST.validate_json,
        lambda s: s.events(workspace=workspace, since=since, limit=limit, kinds=kinds),
        workspace=workspace,
        params={"since": since, "limit": limit, "kind": list(kinds) if kinds else None},
    )


def wait_events(
    timeout: float,
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Call[list[Event]]:
    """One long-poll, ``GET /v1/events?wait=timeout``: :func:`events` as soon as there
    are some, or ``[]`` after ``timeout`` seconds."""
    return _waiting(
        events(workspace=workspace, since=since, limit=limit, kinds=kinds),
        timeout,
        lambda s, seconds: s.wait_events(
            seconds, workspace=workspace, since=since, limit=limit, kinds=kinds
        ),
    )


def last_event_id(*, workspace: str) -> Call[int]:
    """``GET /v1/events/last``."""
    return _get(
        "/v1/events/last",
        _event_id,
        lambda s: s.last_event_id(workspace=workspace),
        workspace=workspace,
    )


def prune(
    *,
    workspace: str,
    message_days: float | None = None,
    agent_days: float | None = None,
) -> Call[PruneReport]:
    """``POST /v1/prune`` (admin)."""
    return Call(
        method="POST",
        path="/v1/prune",
        parse=PruneReport.model_validate_json,
        local=lambda s: s.prune(
            workspace=workspace, message_days=message_days, agent_days=agent_days
        ),
        workspace=workspace,
        body=lambda: request_body(
            unchecked(PruneBody)(message_days=message_days, agent_days=agent_days)
        ),
    )


def _event_id(content: bytes) -> int:
    return EventCursor.model_validate_json(content).id
