"""Event-log and retention calls: events, wait_events, last_event_id, prune."""

from __future__ import annotations

from ...models import PruneReport
from .. import operations
from .base import _builder, _events


def _event_id(content: bytes) -> int:
    from ...wire import EventCursor

    return EventCursor.model_validate_json(content).id


events = _builder(operations.events, _events, lambda s: s.events)
wait_events = _builder(operations.wait_events, _events, lambda s: s.wait_events)
last_event_id = _builder(operations.last_event_id, _event_id, lambda s: s.last_event_id)
prune = _builder(operations.prune, PruneReport.model_validate_json, lambda s: s.prune)
