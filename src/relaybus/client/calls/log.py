"""Event-log and retention calls: events, wait_events, last_event_id, prune."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import Event, PruneReport
from ...wire import EVENT_LIST, EventCursor
from .. import operations
from ..transport import Call
from .base import _call


def events(
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Call[list[Event]]:
    """``GET /v1/events``."""
    return _call(
        operations.events,
        EVENT_LIST.validate_json,
        lambda s: s.events,
        workspace=workspace,
        since=since,
        limit=limit,
        kinds=kinds,
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
    return _call(
        operations.wait_events,
        EVENT_LIST.validate_json,
        lambda s: s.wait_events,
        timeout,
        workspace=workspace,
        since=since,
        limit=limit,
        kinds=kinds,
    )


def last_event_id(*, workspace: str) -> Call[int]:
    """``GET /v1/events/last``."""
    return _call(
        operations.last_event_id, _event_id, lambda s: s.last_event_id, workspace=workspace
    )


def prune(
    *,
    workspace: str,
    message_days: float | None = None,
    agent_days: float | None = None,
) -> Call[PruneReport]:
    """``POST /v1/prune`` (admin)."""
    return _call(
        operations.prune,
        PruneReport.model_validate_json,
        lambda s: s.prune,
        workspace=workspace,
        message_days=message_days,
        agent_days=agent_days,
    )


def _event_id(content: bytes) -> int:
    return EventCursor.model_validate_json(content).id
