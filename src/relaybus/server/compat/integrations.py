"""The seed's integration ingress: ``POST /api/integrations/events``, an external
system's event (an alert, a CI failure, a ticket) as a deduplicated task.

The integration's token (declared in ``RELAYBUS_INTEGRATIONS``, which reads the
seed's ``AGENT_RELAY_INTEGRATIONS`` JSON, or made with ``relaybus integration add``)
comes as ``X-Agent-Relay-Token`` or ``Authorization: Bearer``; the admin token may
post too (as the operator, or as ``integration``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.responses import Response

from ...models import Ingested
from ..routes.integrations import ingest
from .common import CompatCall, SeedBody, answer, json_body, make_compat_router
from .shapes import task_view

router = make_compat_router()


#: An integration's name (as ``/v1``'s paths take it): checked here, before any lookup.
INTEGRATION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


class SeedEvent(SeedBody):
    """An event as the seed's producers send it (``dedupeKey``, ``externalUrl``,
    ``metadata``; ``status: resolved`` closes the active task of the key)."""

    integration: str | None = Field(default=None, pattern=INTEGRATION_NAME)
    source: str | None = None
    title: str | None = None
    body: str | None = None
    target: str | None = None
    channel: str | None = None
    external_url: str | None = None
    metadata: dict[str, Any] | None = None
    priority: str = "normal"
    dedupe_key: str | None = None
    status: Literal["open", "resolved"] = "open"


@router.post("/api/integrations/events")
def integration_event(
    body: Annotated[SeedEvent, json_body(SeedEvent)], call: CompatCall
) -> Response:
    """Take an event: 201 when it opened a task (with its claimable message to the
    target), 200 when it raised an active task's ``occurrenceCount`` (same
    ``dedupeKey``), resolved it, or found nothing to resolve (``outcome: ignored``).
    403 names a missing scope or a target or channel the integration may not use;
    429 with ``Retry-After`` over its rate limit."""
    found = ingest(call, body)
    return answer(ingested_view(found), 201 if found.outcome == "created" else 200)


def ingested_view(found: Ingested) -> dict[str, Any]:
    """``{"ok", "outcome", "task", "messageId"}``: what the event did (``created``,
    ``repeated``, ``resolved`` or ``ignored``), to which task, and the message it
    sent, if any."""
    return {
        "ok": True,
        "outcome": found.outcome,
        "task": None if found.task is None else task_view(found.task),
        "messageId": found.message_id,
    }
