"""relaybus over MCP: the tools coding agents use to message each other.

- ``relaybus mcp``: one coding-agent session's server over stdio, registered
  as that session's agent: a standard-library bridge to the warm local relay's
  ``/mcp`` (:mod:`.bridge`), or in-process (:func:`.stdio.serve_stdio`) with
  ``RELAYBUS_DAEMON=0``, ``RELAYBUS_URL`` or ``RELAYBUS_DATABASE``;
- ``/mcp`` on ``relaybus serve`` (:mod:`relaybus.server.mcp`): streamable HTTP, one agent
  per MCP session.

Both serve :func:`.server.build_server`: the tools of :mod:`.tools`, the
``relaybus://inbox`` resource with change notifications (:mod:`.resources`)
and instructions that teach the agent its id and the etiquette. The ``mcp``
SDK is imported by these modules only (never by :mod:`.bridge` and its modules
:mod:`.bridge_session`, :mod:`.listing` and :mod:`.streamable`, which are standard
library only), never by the rest of relaybus.
"""

from __future__ import annotations

from .. import _lazy_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .server import build_server, instructions
    from .session import INBOX_URI, AgentSession, StdioSession

#: Loaded on first use (PEP 562): :mod:`.bridge` is standard library only.
_LAZY = {
    "build_server": ".server",
    "instructions": ".server",
    "INBOX_URI": ".session",
    "AgentSession": ".session",
    "StdioSession": ".session",
}


__getattr__ = _lazy_names(__name__, _LAZY, globals())


__all__ = ["INBOX_URI", "AgentSession", "StdioSession", "build_server", "instructions"]
