"""The client side: :class:`Relay` and :class:`AgentHandle` (sync), :class:`AsyncRelay`
and :class:`AsyncAgentHandle` (asyncio), :class:`RemoteService` (the service API over
HTTP).

The async and remote names load on first use (PEP 562): an embedded relay does not
import httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .relay import AgentHandle, Relay

if TYPE_CHECKING:
    from .aio import AsyncAgentHandle, AsyncRelay
    from .api import ServiceAPI
    from .remote import RemoteService

_LAZY = {
    "AsyncAgentHandle": ".aio",
    "AsyncRelay": ".aio",
    "RemoteService": ".remote",
    "ServiceAPI": ".transport",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'relaybus.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["AgentHandle", "AsyncAgentHandle", "AsyncRelay", "Relay", "RemoteService", "ServiceAPI"]
