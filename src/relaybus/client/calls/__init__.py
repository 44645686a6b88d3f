"""Every relay operation as a :class:`~relaybus.client.transport.Call`: the HTTP
request of the API contract and the same operation on an embedded service.

One builder per :class:`~relaybus.service.Service` operation a client makes, with
that method's arguments (``workspace`` is required here: the callers always know
it). :class:`~relaybus.client.Relay` and :class:`~relaybus.client.AsyncRelay` run
them through a backend (over HTTP, or ``call.local(service)`` embedded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .agents import get_agent, heartbeat, list_agents, register, sweep, unregister, update_agent
from .integrations import (
    add_integration,
    callback_deliveries,
    get_integration,
    ingest_event,
    list_integrations,
    open_task,
    replay_callback,
    revoke_integration,
    rotate_integration,
)
from .log import events, last_event_id, prune, wait_events
from .messages import (
    deliveries,
    get_message,
    history,
    inbox,
    list_messages,
    mark_delivered,
    mark_read,
    receipts,
    send,
    send_many,
    thread,
    unread_count,
    wait,
    wait_deliveries,
)
from .pairs import (
    get_pair,
    list_pairs,
    pair_accept,
    pair_hangup,
    pair_invite,
    pair_reject,
    pair_send,
)
from .spawned import (
    get_spawned,
    list_spawned,
    logs,
    release_spawned,
    screen,
    send_input,
    spawn,
)
from .tasks import (
    claim,
    get_task,
    list_tasks,
    release,
    renew,
    renew_held,
    task_history,
    update_task,
)
from .workflow_runs import (
    create_workflow_run,
    get_workflow_run,
    list_workflow_runs,
    update_workflow_run,
)

if TYPE_CHECKING:
    from ...wire import Registration


def __getattr__(name: str) -> Any:
    # ``calls.Registration``, imported when asked for: :mod:`relaybus.wire` (the API's
    # bodies) is not needed by an embedded relay, which parses no answer.
    if name == "Registration":
        from ...wire import Registration

        return Registration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Registration",
    "add_integration",
    "callback_deliveries",
    "claim",
    "deliveries",
    "events",
    "get_agent",
    "get_integration",
    "get_message",
    "get_pair",
    "get_task",
    "heartbeat",
    "history",
    "inbox",
    "ingest_event",
    "last_event_id",
    "list_agents",
    "list_integrations",
    "list_messages",
    "list_pairs",
    "list_tasks",
    "mark_delivered",
    "mark_read",
    "open_task",
    "pair_accept",
    "pair_hangup",
    "pair_invite",
    "pair_reject",
    "pair_send",
    "prune",
    "receipts",
    "register",
    "release",
    "renew",
    "renew_held",
    "replay_callback",
    "revoke_integration",
    "rotate_integration",
    "send",
    "send_many",
    "sweep",
    "task_history",
    "thread",
    "unread_count",
    "unregister",
    "update_agent",
    "update_task",
    "wait",
    "wait_deliveries",
    "wait_events",
    "create_workflow_run",
    "get_workflow_run",
    "list_workflow_runs",
    "update_workflow_run",
    "get_spawned",
    "list_spawned",
    "logs",
    "release_spawned",
    "screen",
    "send_input",
    "spawn",
]
