"""Agents: register (issuing a token), list, get, update, heartbeat, unregister.

Routes with an ``{agent_id}`` use the path converter, so ids with ``/`` work;
the longer paths (``…/heartbeat`` here, the inbox routes, whose router the
app includes first) must be registered before the bare ``/v1/agents/{agent_id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body as BodyParam
from fastapi import Query
from pydantic import BaseModel, Field, TypeAdapter
from starlette.responses import Response

from ...bounds import MAX_HOST_CHARS, MAX_INSTANCE_ID_CHARS
from ...errors import Forbidden
from ...models import Agent, AgentStatus
from ...service.tokens import hash_token, new_token
from ..auth import ApiCall, Epoch
from ..problems import responses
from . import (
    META,
    AgentPath,
    Body,
    Label,
    Name,
    Pid,
    Text,
    examples,
    make_router,
    render,
    render_list,
)

router = make_router(tags=["agents"])
AGENTS = TypeAdapter(list[Agent])


class RegisterBody(Body):
    """A registration: the agent's address, what it is, and where it runs."""

    model_config = examples({"id": "alice", "tags": ["backend"], "capabilities": ["review"]})

    id: Name | None = Field(default=None, description="The agent id; derived when omitted.")
    label: Label | None = None
    tags: list[Name] = Field(default_factory=list)
    capabilities: list[Name] = Field(default_factory=list)
    channels: list[Name] = Field(default_factory=list)
    pid: Pid | None = None
    host: Text | None = Field(default=None, json_schema_extra={"maxLength": MAX_HOST_CHARS})
    cwd: Text | None = None
    meta: dict[str, Any] | None = Field(default=None, description=META)
    instance_id: Text | None = Field(
        default=None,
        description="Same instance re-registering keeps the epoch; a new one bumps it.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_INSTANCE_ID_CHARS},
    )
    tool: Text = Field(default="agent", max_length=200)


class Registration(BaseModel):
    """A registered agent and its token (shown once: the relay keeps only its digest)."""

    agent: Agent
    token: str


class AgentUpdate(Body):
    """Fields to change; omitted fields stay, an empty list clears."""

    model_config = examples({"status": "busy", "tags": ["backend", "python"]})

    label: Label | None = None
    tags: list[Name] | None = None
    capabilities: list[Name] | None = None
    channels: list[Name] | None = None
    status: AgentStatus | None = None
    meta: dict[str, Any] | None = Field(default=None, description=META)


class HeartbeatBody(Body):
    """An optional new status along with the heartbeat."""

    status: AgentStatus | None = None


@router.post(
    "/v1/agents",
    status_code=201,
    response_model=Registration,
    responses=responses(400, 413),
    summary="Register an agent and get its token",
)
def register(body: RegisterBody, call: ApiCall) -> Response:
    """Register (or re-register) an agent. The response's token lets its holder act
    as this agent only; it replaces any earlier token of the agent. Needs the
    admin token, or the agent's own token to re-register."""
    caller = call.caller()
    if not caller.admin:  # an agent token re-registers only its own agent
        if body.id is None:
            raise Forbidden(f"this token acts as {caller.agent_id!r} only: give that id")
        caller.act_as(body.id, "id")
    token = new_token()
    agent = call.service.register(
        body.id,
        workspace=caller.workspace,
        label=body.label,
        tags=body.tags,
        capabilities=body.capabilities,
        channels=body.channels,
        pid=body.pid,
        host=body.host,
        cwd=body.cwd,
        meta=body.meta,
        instance_id=body.instance_id,
        tool=body.tool,
        token_hash=hash_token(token),
    )
    call.context.auth.cache.forget(caller.workspace, agent.id)  # the old token is revoked
    return render(Registration(agent=agent, token=token), 201)


@router.get("/v1/agents", response_model=list[Agent], responses=responses(400))
def list_agents(
    call: ApiCall,
    status: AgentStatus | None = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    capability: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=200)] = None,
    online_only: bool = False,
) -> Response:
    """Agents of the workspace, by id, with their effective status."""
    found = call.service.list_agents(
        workspace=call.caller().workspace,
        status=status,
        tag=tag,
        capability=capability,
        channel=channel,
        online_only=online_only,
    )
    return render_list(AGENTS, found)


@router.post(
    "/v1/agents/{agent_id:path}/heartbeat",
    response_model=Agent,
    responses=responses(400, 404, 409, 413),
)
def heartbeat(
    agent_id: AgentPath,
    call: ApiCall,
    epoch: Epoch = None,
    body: Annotated[HeartbeatBody | None, BodyParam()] = None,
) -> Response:
    """Mark the agent alive (optionally setting its status)."""
    caller = call.caller()
    agent = call.service.heartbeat(
        caller.act_as(agent_id),
        workspace=caller.workspace,
        epoch=epoch,
        status=body.status if body is not None else None,
    )
    return render(agent)


@router.get("/v1/agents/{agent_id:path}", response_model=Agent, responses=responses(404))
def get_agent(agent_id: AgentPath, call: ApiCall) -> Response:
    """One agent."""
    return render(call.service.get_agent(agent_id, workspace=call.caller().workspace))


@router.patch(
    "/v1/agents/{agent_id:path}",
    response_model=Agent,
    responses=responses(400, 404, 409, 413),
)
def update_agent(
    agent_id: AgentPath, body: AgentUpdate, call: ApiCall, epoch: Epoch = None
) -> Response:
    """Change the agent's label, tags, capabilities, channels, status or meta."""
    caller = call.caller()
    agent = call.service.update_agent(
        caller.act_as(agent_id),
        workspace=caller.workspace,
        epoch=epoch,
        label=body.label,
        tags=body.tags,
        capabilities=body.capabilities,
        channels=body.channels,
        status=body.status,
        meta=body.meta,
    )
    return render(agent)


@router.delete(
    "/v1/agents/{agent_id:path}",
    status_code=204,
    response_class=Response,
    responses=responses(404, 409),
)
def unregister(agent_id: AgentPath, call: ApiCall, epoch: Epoch = None) -> Response:
    """Remove the agent: its unread deliveries go, its tasks reopen, its token is revoked."""
    caller = call.caller()
    call.service.unregister(caller.act_as(agent_id), workspace=caller.workspace, epoch=epoch)
    call.context.auth.cache.forget(caller.workspace, agent_id)
    return Response(status_code=204)
