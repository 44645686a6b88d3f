"""relaybus: agent-to-agent messaging for AI coding tools.

>>> from relaybus import Relay
>>> relay = Relay.open()
>>> me = relay.register("alice", tags=["backend"])
>>> me.send("tag:frontend", "API v2 is merged")
"""

from .client import AgentHandle, Relay
from .errors import Conflict, Forbidden, InvalidInput, NotFound, RelayError, StoreError, TooLarge
from .models import Agent, AgentStatus, Event, Message, Priority, Task, TaskEvent, TaskStatus

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentHandle",
    "AgentStatus",
    "Conflict",
    "Event",
    "Forbidden",
    "InvalidInput",
    "Message",
    "NotFound",
    "Priority",
    "Relay",
    "RelayError",
    "StoreError",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "TooLarge",
    "__version__",
]
