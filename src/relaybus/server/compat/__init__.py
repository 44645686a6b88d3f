"""agent-relay-server's HTTP API (``/api/*``) on relaybus: its routes, its token
headers and its field names, mapped onto the same service as ``/v1``.

Its clients (the Claude Code plugin, the Codex sidecar, the TypeScript
``RelayClient``, scripts with curl) keep working against ``relaybus serve``. The
routes are thin like ``/v1``'s (parse, call one service method, render), answer
errors as problem+json, and are left out of the OpenAPI document. docs/compat.md
has the table, route by route, and what differs from the seed.

:data:`ROUTERS` in the order the app adds them: the longer ``/api/agents/{id}/…``
paths (inbox, claims) before the bare ``/api/agents/{id}``.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import agents, claims, inbox, integrations, messages, system, tasks

#: The ``/api`` routers, in routing order.
ROUTERS: tuple[APIRouter, ...] = (
    messages.router,
    inbox.router,
    claims.router,
    tasks.router,
    agents.router,
    integrations.router,
    system.router,
)

__all__ = ["ROUTERS"]
