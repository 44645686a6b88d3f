"""relaybus over MCP: the tools coding agents use to message each other.

- ``relaybus mcp`` (:func:`.stdio.serve_stdio`): one coding-agent session's
  server over stdio, registered as that session's agent;
- ``/mcp`` on ``relaybus serve`` (:mod:`relaybus.server.mcp`): streamable HTTP, one agent
  per MCP session.

Both serve :func:`.server.build_server`: the tools of :mod:`.tools`, the
``relaybus://inbox`` resource with change notifications (:mod:`.resources`)
and instructions that teach the agent its id and the etiquette. The ``mcp``
SDK is imported by these modules only, never by the rest of relaybus.
"""

from __future__ import annotations

from .server import build_server, instructions
from .session import INBOX_URI, AgentSession, StdioSession

__all__ = ["INBOX_URI", "AgentSession", "StdioSession", "build_server", "instructions"]
