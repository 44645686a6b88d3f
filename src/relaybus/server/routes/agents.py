"""Agents: register (issuing a token), list, get, update, heartbeat, renew the leases
held, unregister.

Routes with an ``{agent_id}`` use the path converter, so ids with ``/`` work;
the longer paths (``…/heartbeat`` here, the inbox routes, whose router the
app includes first) must be registered before the bare ``/v1/agents/{agent_id}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Body as BodyParam
from fastapi import Query
from starlette.responses import Response

from ...errors import Forbidden
from ...models import Agent, AgentStatus, LeaseRenewal
from ...service.tokens import hash_token, new_token
from ...wire import AGENT_LIST, AgentUpdate, HeartbeatBody, RegisterBody, Registration
from ..auth import ApiCall, Epoch
from ..problems import responses
from . import AgentPath, make_router, render, render_list

router = make_router(tags=["agents"])


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
        approval=body.approval,
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
    return render_list(AGENT_LIST, found)


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


@router.post(
    "/v1/agents/{agent_id:path}/leases/renew",
    response_model=LeaseRenewal,
    responses=responses(400, 404, 409),
)
def renew_held(agent_id: AgentPath, call: ApiCall, epoch: Epoch = None) -> Response:
    """Extend every lease the agent holds, each by the length it was claimed with (what
    a runtime keeping a session open calls while it lives); ``next_in``: seconds until
    the next renewal is due, null when nothing is held."""
    caller = call.caller()
    renewal = call.service.renew_held(
        caller.act_as(agent_id), workspace=caller.workspace, epoch=epoch
    )
    return render(renewal)


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
    """Change the agent's label, tags, capabilities, channels, status, meta (a list
    whole, or item by item) or approval mode; never a new epoch."""
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
        add_tags=body.add_tags,
        remove_tags=body.remove_tags,
        add_capabilities=body.add_capabilities,
        remove_capabilities=body.remove_capabilities,
        join_channels=body.join_channels,
        leave_channels=body.leave_channels,
        approval=body.approval,
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
