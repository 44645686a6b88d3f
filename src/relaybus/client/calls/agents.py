"""Agent calls: register, heartbeat, update, unregister, get, list, sweep."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...models import Agent, AgentStatus
from ...wire import (
    AGENT_LIST,
    AgentUpdate,
    HeartbeatBody,
    RegisterBody,
    Registration,
    SweepReport,
    request_body,
    unchecked,
)
from ..transport import Call
from .base import _agent_path, _get, _list, _nothing, _object, _status

if TYPE_CHECKING:
    from ...service import Service


def register(
    agent_id: str | None = None,
    *,
    workspace: str,
    label: str | None = None,
    tags: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    channels: Sequence[str] = (),
    pid: int | None = None,
    host: str | None = None,
    cwd: str | None = None,
    meta: Mapping[str, Any] | None = None,
    instance_id: str | None = None,
    tool: str = "agent",
) -> Call[Registration]:
    """``POST /v1/agents``. ``host`` and ``cwd`` default to this client's (not the
    server's), so the derived id and the pid check describe this process."""
    host = host or socket.gethostname()
    cwd = cwd or os.getcwd()
    body = unchecked(RegisterBody)(
        id=agent_id,
        label=label,
        tags=list(tags),
        capabilities=list(capabilities),
        channels=list(channels),
        pid=pid,
        host=host,
        cwd=cwd,
        meta=_object(meta),
        instance_id=instance_id,
        tool=tool,
    )

    def local(s: Service) -> Registration:
        agent = s.register(
            agent_id,
            workspace=workspace,
            label=label,
            tags=tags,
            capabilities=capabilities,
            channels=channels,
            pid=pid,
            host=host,
            cwd=cwd,
            meta=meta,
            instance_id=instance_id,
            tool=tool,
        )
        return Registration(agent=agent)

    return Call(
        method="POST",
        path="/v1/agents",
        parse=Registration.model_validate_json,
        local=local,
        workspace=workspace,
        agent=agent_id,
        body=request_body(body),
    )


def heartbeat(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    status: AgentStatus | str | None = None,
) -> Call[Agent]:
    """``POST /v1/agents/{id}/heartbeat``."""
    return Call(
        method="POST",
        path=_agent_path(agent_id, "/heartbeat"),
        parse=Agent.model_validate_json,
        local=lambda s: s.heartbeat(agent_id, workspace=workspace, epoch=epoch, status=status),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=None
        if status is None
        else request_body(unchecked(HeartbeatBody)(status=_status(status))),
    )


def update_agent(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    label: str | None = None,
    tags: Sequence[str] | None = None,
    capabilities: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    status: AgentStatus | str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Call[Agent]:
    """``PATCH /v1/agents/{id}`` (``None`` leaves a field as it is)."""
    changes = unchecked(AgentUpdate)(
        label=label,
        tags=_list(tags),
        capabilities=_list(capabilities),
        channels=_list(channels),
        status=_status(status),
        meta=_object(meta),
    )
    return Call(
        method="PATCH",
        path=_agent_path(agent_id),
        parse=Agent.model_validate_json,
        local=lambda s: s.update_agent(
            agent_id,
            workspace=workspace,
            epoch=epoch,
            label=label,
            tags=tags,
            capabilities=capabilities,
            channels=channels,
            status=status,
            meta=meta,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=request_body(changes),
    )


def unregister(agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[None]:
    """``DELETE /v1/agents/{id}``; the session forgets the agent's token."""
    return Call(
        method="DELETE",
        path=_agent_path(agent_id),
        parse=_nothing,
        local=lambda s: s.unregister(agent_id, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        forget_token=True,
    )


def get_agent(agent_id: str, *, workspace: str) -> Call[Agent]:
    """``GET /v1/agents/{id}``."""
    return _get(
        _agent_path(agent_id),
        Agent.model_validate_json,
        lambda s: s.get_agent(agent_id, workspace=workspace),
        workspace=workspace,
    )


def list_agents(
    *,
    workspace: str,
    status: AgentStatus | str | None = None,
    tag: str | None = None,
    capability: str | None = None,
    channel: str | None = None,
    online_only: bool = False,
) -> Call[list[Agent]]:
    """``GET /v1/agents``."""
    return _get(
        "/v1/agents",
        AGENT_LIST.validate_json,
        lambda s: s.list_agents(
            workspace=workspace,
            status=status,
            tag=tag,
            capability=capability,
            channel=channel,
            online_only=online_only,
        ),
        workspace=workspace,
        params={
            "status": status,
            "tag": tag,
            "capability": capability,
            "channel": channel,
            "online_only": online_only or None,
        },
    )


def sweep(*, workspace: str) -> Call[dict[str, int]]:
    """``POST /v1/sweep`` (admin)."""
    return Call(
        method="POST",
        path="/v1/sweep",
        parse=_sweep_report,
        local=lambda s: s.sweep(workspace=workspace),
        workspace=workspace,
    )


def _sweep_report(content: bytes) -> dict[str, int]:
    return SweepReport.model_validate_json(content).model_dump()
