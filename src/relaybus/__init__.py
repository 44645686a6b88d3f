"""relaybus: agent-to-agent messaging for AI coding tools.

>>> from relaybus import Relay
>>> relay = Relay.open()
>>> me = relay.register("alice", tags=["backend"])
>>> me.send("tag:frontend", "API v2 is merged")

Names load on first use (PEP 562), so ``relaybus --help`` does not pay for
SQLAlchemy and pydantic.
"""

from __future__ import annotations

import importlib

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
    from collections.abc import Callable, Mapping
    from typing import Any

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


def _lazy_names(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name on first use
    (PEP 562): for this package and its subpackages that load names lazily. Defined
    here, not in a module of its own, because every relaybus process imports this one.

    Args:
        package: the package's ``__name__`` (for messages and relative module names).
        exports: each lazily loaded name -> the module that defines it (absolute, or
            relative to ``package``).
        namespace: the package's ``globals()``: a loaded name is stored there, so
            later uses do not come back to ``__getattr__``.

    Returns:
        ``__getattr__(name)``, which raises ``AttributeError`` for a name not in
        ``exports``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__


__getattr__ = _lazy_names(__name__, _EXPORTS, globals())


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
