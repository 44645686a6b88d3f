"""Agent calls: register, heartbeat, update, unregister, get, list, sweep."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...models import Agent, AgentStatus
from ...wire import AGENT_LIST, Registration, SweepReport
from .. import operations
from ..transport import Call
from .base import _call, _nothing

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

    def local(s: Service) -> Callable[..., Registration]:
        return lambda *args, **kwargs: Registration(agent=s.register(*args, **kwargs))

    return _call(
        operations.register,
        Registration.model_validate_json,
        local,
        agent_id,
        workspace=workspace,
        label=label,
        tags=tags,
        capabilities=capabilities,
        channels=channels,
        pid=pid,
        host=host or socket.gethostname(),
        cwd=cwd or os.getcwd(),
        meta=meta,
        instance_id=instance_id,
        tool=tool,
    )


def heartbeat(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    status: AgentStatus | str | None = None,
) -> Call[Agent]:
    """``POST /v1/agents/{id}/heartbeat``."""
    return _call(
        operations.heartbeat,
        Agent.model_validate_json,
        lambda s: s.heartbeat,
        agent_id,
        workspace=workspace,
        epoch=epoch,
        status=status,
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
    return _call(
        operations.update_agent,
        Agent.model_validate_json,
        lambda s: s.update_agent,
        agent_id,
        workspace=workspace,
        epoch=epoch,
        label=label,
        tags=tags,
        capabilities=capabilities,
        channels=channels,
        status=status,
        meta=meta,
    )


def unregister(agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[None]:
    """``DELETE /v1/agents/{id}``; the session forgets the agent's token."""
    return Call(
        operations.unregister(agent_id, workspace=workspace, epoch=epoch),
        _nothing,
        lambda s: s.unregister(agent_id, workspace=workspace, epoch=epoch),
        forget_token=True,
    )


def get_agent(agent_id: str, *, workspace: str) -> Call[Agent]:
    """``GET /v1/agents/{id}``."""
    return _call(
        operations.get_agent,
        Agent.model_validate_json,
        lambda s: s.get_agent,
        agent_id,
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
    return _call(
        operations.list_agents,
        AGENT_LIST.validate_json,
        lambda s: s.list_agents,
        workspace=workspace,
        status=status,
        tag=tag,
        capability=capability,
        channel=channel,
        online_only=online_only,
    )


def sweep(*, workspace: str) -> Call[dict[str, int]]:
    """``POST /v1/sweep`` (admin)."""
    return _call(operations.sweep, _sweep_report, lambda s: s.sweep, workspace=workspace)


def _sweep_report(content: bytes) -> dict[str, int]:
    return SweepReport.model_validate_json(content).model_dump()
