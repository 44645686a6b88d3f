"""Integration calls: manage integrations, post their events, read and replay their
callbacks; and ``open_task`` (``POST /v1/tasks``)."""

from __future__ import annotations

from ...models import CallbackDelivery, Ingested, Integration, IntegrationCreated, Task
from .. import integration_requests as requests
from .base import _builder


def _callbacks(content: bytes) -> list[CallbackDelivery]:
    from ...wire import CALLBACK_LIST

    return CALLBACK_LIST.validate_json(content)


def _integrations(content: bytes) -> list[Integration]:
    from ...wire import INTEGRATION_LIST

    return INTEGRATION_LIST.validate_json(content)


_created = IntegrationCreated.model_validate_json
_one = Integration.model_validate_json

open_task = _builder(requests.open_task, Task.model_validate_json, lambda s: s.open_task)
add_integration = _builder(requests.add_integration, _created, lambda s: s.add_integration)
list_integrations = _builder(
    requests.list_integrations, _integrations, lambda s: s.list_integrations
)
get_integration = _builder(requests.get_integration, _one, lambda s: s.get_integration)
rotate_integration = _builder(requests.rotate_integration, _created, lambda s: s.rotate_integration)
revoke_integration = _builder(requests.revoke_integration, _one, lambda s: s.revoke_integration)
ingest_event = _builder(
    requests.ingest_event, Ingested.model_validate_json, lambda s: s.ingest_event
)
callback_deliveries = _builder(
    requests.callback_deliveries, _callbacks, lambda s: s.callback_deliveries
)
replay_callback = _builder(
    requests.replay_callback, CallbackDelivery.model_validate_json, lambda s: s.replay_callback
)
