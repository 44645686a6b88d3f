"""The seed's agent routes: register, list, get, update, heartbeat, status, ready,
remove. Answers are agent cards (:func:`~.shapes.agent_card`).

``{agent_id:path}`` takes ids with ``/``, as on ``/v1``: the longer paths
(``…/heartbeat``, ``…/status``, ``…/ready``, and the inbox in :mod:`.messages`,
whose routes the app adds first) come before the bare ``/api/agents/{agent_id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from starlette.responses import Response

from ...errors import Forbidden
from ...models import AgentStatus
from ...profiles import APPROVAL_MODES
from ...service.tokens import hash_token, new_token
from ..routes import AgentPath
from .common import CompatCall, SeedBody, SeedSession, answer, json_body, make_compat_router
from .shapes import agent_card

router = make_compat_router()


class SeedAgent(SeedBody):
    """A registration as the seed's clients send it. ``name`` and ``rig`` are kept in
    ``meta``; ``machine`` is the host; ``channels`` and ``cwd`` may come in ``meta``
    (the Codex sidecar puts them there); ``status`` is accepted and not used
    (registering makes an agent online)."""

    id: str | None = None
    name: str | None = None
    label: str | None = None
    machine: str | None = None
    host: str | None = None
    rig: str | None = None
    tool: str | None = None
    tags: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    channels: list[str] | None = None
    pid: int | None = None
    cwd: str | None = None
    status: AgentStatus | None = None
    instance_id: str | None = None
    meta: dict[str, Any] | None = None

    def relay_meta(self) -> dict[str, Any]:
        """``meta`` with ``name`` and ``rig`` added (when given)."""
        meta = dict(self.meta or {})
        for key, value in (("name", self.name), ("rig", self.rig)):
            if value is not None:
                meta[key] = value
        return meta

    def from_meta(self, key: str) -> Any:
        """``meta[key]``, or None without a meta."""
        return None if self.meta is None else self.meta.get(key)


class SeedStatus(SeedSession):
    """``PATCH /api/agents/{id}/status``: the new presence."""

    status: AgentStatus


class SeedReady(SeedSession):
    """``PATCH /api/agents/{id}/ready``: whether the agent takes work now."""

    ready: bool


class SeedAgentUpdate(SeedSession):
    """``PATCH /api/agents/{id}``: fields to change; omitted ones stay."""

    label: str | None = None
    tags: list[str] | None = None
    capabilities: list[str] | None = None
    channels: list[str] | None = None
    status: AgentStatus | None = None
    meta: dict[str, Any] | None = None


@router.post("/api/agents", status_code=201)
def register(body: Annotated[SeedAgent, json_body(SeedAgent)], call: CompatCall) -> Response:
    """Register (or re-register) an agent: 201 with its card, its ``epoch`` (send it
    back to be fenced against a newer instance) and a ``token`` that acts as this
    agent only (replacing its earlier one), as ``POST /v1/agents`` does."""
    caller = call.caller()
    if not caller.admin:  # an agent token re-registers only its own agent
        if body.id is None:
            raise Forbidden(f"this token acts as {caller.agent_id!r} only: give that id")
        caller.act_as(body.id, "id")
    channels = body.channels if body.channels is not None else body.from_meta("channels")
    cwd = body.cwd if body.cwd is not None else body.from_meta("cwd")
    # The seed's sidecars say their approval mode (the same three) in meta.approvalMode.
    approval = body.from_meta("approvalMode")
    token = new_token()
    agent = call.service.register(
        body.id,
        workspace=caller.workspace,
        label=body.label,
        tags=body.tags,
        capabilities=body.capabilities,
        channels=channels if isinstance(channels, list) else (),
        pid=body.pid,
        host=body.machine or body.host,
        cwd=cwd if isinstance(cwd, str) else None,
        meta=body.relay_meta(),
        instance_id=body.instance_id,
        tool=body.tool or body.rig or "agent",
        token_hash=hash_token(token),
        approval=approval if approval in APPROVAL_MODES else None,
    )
    call.context.auth.cache.forget(caller.workspace, agent.id)  # the old token is revoked
    return answer({**agent_card(agent), "token": token}, 201)


@router.get("/api/agents")
def list_agents(
    call: CompatCall,
    status: AgentStatus | None = None,
    tag: str | None = None,
    capability: str | None = None,
    channel: str | None = None,
) -> Response:
    """The workspace's agents, by id (an array of cards)."""
    found = call.service.list_agents(
        workspace=call.caller().workspace,
        status=status,
        tag=tag,
        capability=capability,
        channel=channel,
    )
    return answer([agent_card(agent) for agent in found])


@router.post("/api/agents/{agent_id:path}/heartbeat")
def heartbeat(
    agent_id: AgentPath,
    body: Annotated[SeedSession, json_body(SeedSession)],
    call: CompatCall,
) -> Response:
    """Mark the agent alive. 404 for an agent the relay does not know (the seed's
    clients register again), 409 for a stale ``epoch``."""
    caller = call.caller()
    agent = call.service.heartbeat(
        caller.act_as(agent_id), workspace=caller.workspace, epoch=body.epoch
    )
    return answer(agent_card(agent))


@router.patch("/api/agents/{agent_id:path}/status")
def set_status(
    agent_id: AgentPath, body: Annotated[SeedStatus, json_body(SeedStatus)], call: CompatCall
) -> Response:
    """Set the agent's presence (online, busy, idle, offline); offline releases
    what it holds."""
    caller = call.caller()
    agent = call.service.heartbeat(
        caller.act_as(agent_id), workspace=caller.workspace, epoch=body.epoch, status=body.status
    )
    return answer(agent_card(agent))


@router.patch("/api/agents/{agent_id:path}/ready")
def set_ready(
    agent_id: AgentPath, body: Annotated[SeedReady, json_body(SeedReady)], call: CompatCall
) -> Response:
    """The seed's readiness, on relaybus's status: not ready is ``busy``; ready keeps
    the status (its clients set online or idle through ``/status`` alongside) and
    counts as a heartbeat. The card's ``ready`` is status online or idle."""
    caller = call.caller()
    agent = call.service.heartbeat(
        caller.act_as(agent_id),
        workspace=caller.workspace,
        epoch=body.epoch,
        status=None if body.ready else AgentStatus.BUSY,
    )
    return answer(agent_card(agent))


@router.get("/api/agents/{agent_id:path}")
def get_agent(agent_id: AgentPath, call: CompatCall) -> Response:
    """One agent's card."""
    return answer(agent_card(call.service.get_agent(agent_id, workspace=call.caller().workspace)))


@router.patch("/api/agents/{agent_id:path}")
def update_agent(
    agent_id: AgentPath,
    body: Annotated[SeedAgentUpdate, json_body(SeedAgentUpdate)],
    call: CompatCall,
) -> Response:
    """Change the agent's label, tags, capabilities, channels, status or meta."""
    caller = call.caller()
    agent = call.service.update_agent(
        caller.act_as(agent_id),
        workspace=caller.workspace,
        epoch=body.epoch,
        label=body.label,
        tags=body.tags,
        capabilities=body.capabilities,
        channels=body.channels,
        status=body.status,
        meta=body.meta,
    )
    return answer(agent_card(agent))


@router.delete("/api/agents/{agent_id:path}")
def unregister(agent_id: AgentPath, call: CompatCall) -> Response:
    """Remove the agent (its unread deliveries go, its tasks reopen, its token is
    revoked): ``{"ok": true, "id": ...}``."""
    caller = call.caller()
    call.service.unregister(caller.act_as(agent_id), workspace=caller.workspace)
    call.context.auth.cache.forget(caller.workspace, agent_id)
    return answer({"ok": True, "id": agent_id})
