"""The client side: :class:`Relay` and :class:`AgentHandle` (sync), :class:`AsyncRelay`
and :class:`AsyncAgentHandle` (asyncio), over a relay server or the embedded store.

Every operation is one :class:`~relaybus.client.transport.Call` (see
:mod:`relaybus.client.calls`) that a backend runs: over HTTP
(:mod:`~relaybus.client.backends`, httpx) or on the embedded service
(``call.local(service)``). The async modules are the source; the sync ones are
generated from them (``scripts/unasync.py``).

The names load on first use (PEP 562; :mod:`.warm` needs none of them); an
embedded relay does not import httpx, a remote one does not import the service.
"""

from __future__ import annotations

from .. import _lazy_names

# Not ``from typing import ...``: the standard-library clients of the warm relay
# (:mod:`.warm`, the ``relaybus mcp`` bridge) import this package and stay lean.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .aio import AsyncAgentHandle, AsyncRelay
    from .relay import AgentHandle, Relay

_LAZY = {
    "AgentHandle": ".relay",
    "Relay": ".relay",
    "AsyncAgentHandle": ".aio",
    "AsyncRelay": ".aio",
}


__getattr__ = _lazy_names(__name__, _LAZY, globals())


__all__ = ["AgentHandle", "AsyncAgentHandle", "AsyncRelay", "Relay"]
