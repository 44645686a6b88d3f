"""relaybus: agent-to-agent messaging for AI coding tools.

>>> from relaybus import Relay
>>> relay = Relay.open()
>>> me = relay.register("alice", tags=["backend"])
>>> me.send("tag:frontend", "API v2 is merged")

Names load on first use (PEP 562), so ``relaybus --help`` does not pay for
SQLAlchemy and pydantic.
"""

from __future__ import annotations

from ._lazy import lazy_names

# Not ``from typing import TYPE_CHECKING``: importing typing costs the hook
# commands (``relaybus hook``, run on every prompt) about 7 ms; type checkers
# treat any ``TYPE_CHECKING`` name as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

_EXPORTS = {
    "AgentHandle": "relaybus.client",
    "AsyncAgentHandle": "relaybus.client",
    "AsyncRelay": "relaybus.client",
    "Relay": "relaybus.client",
    "Conflict": "relaybus.errors",
    "Forbidden": "relaybus.errors",
    "InvalidInput": "relaybus.errors",
    "NoRelay": "relaybus.errors",
    "NotFound": "relaybus.errors",
    "RateLimited": "relaybus.errors",
    "RelayError": "relaybus.errors",
    "StoreError": "relaybus.errors",
    "TooLarge": "relaybus.errors",
    "Unauthorized": "relaybus.errors",
    "Agent": "relaybus.models",
    "AgentStatus": "relaybus.models",
    "Event": "relaybus.models",
    "Message": "relaybus.models",
    "Priority": "relaybus.models",
    "Task": "relaybus.models",
    "TaskEvent": "relaybus.models",
    "TaskStatus": "relaybus.models",
}

if TYPE_CHECKING:
    from .client import AgentHandle, AsyncAgentHandle, AsyncRelay, Relay
    from .errors import (
        Conflict,
        Forbidden,
        InvalidInput,
        NoRelay,
        NotFound,
        RateLimited,
        RelayError,
        StoreError,
        TooLarge,
        Unauthorized,
    )
    from .models import Agent, AgentStatus, Event, Message, Priority, Task, TaskEvent, TaskStatus


__getattr__ = lazy_names(__name__, _EXPORTS, globals())


__all__ = [
    "Agent",
    "AgentHandle",
    "AgentStatus",
    "AsyncAgentHandle",
    "AsyncRelay",
    "Conflict",
    "Event",
    "Forbidden",
    "InvalidInput",
    "Message",
    "NoRelay",
    "NotFound",
    "Priority",
    "RateLimited",
    "Relay",
    "RelayError",
    "StoreError",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "TooLarge",
    "Unauthorized",
    "__version__",
]
