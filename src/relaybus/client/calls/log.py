"""Event-log and retention calls: events, wait_events, last_event_id, prune."""

from __future__ import annotations

from ...models import PruneReport
from ...wire import EVENT_LIST, EventCursor
from .. import operations
from .base import _builder


def _event_id(content: bytes) -> int:
    return EventCursor.model_validate_json(content).id


events = _builder(operations.events, EVENT_LIST.validate_json, lambda s: s.events)
wait_events = _builder(operations.wait_events, EVENT_LIST.validate_json, lambda s: s.wait_events)
last_event_id = _builder(operations.last_event_id, _event_id, lambda s: s.last_event_id)
prune = _builder(operations.prune, PruneReport.model_validate_json, lambda s: s.prune)
