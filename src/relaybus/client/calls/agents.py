"""Agent calls: register, heartbeat, update, unregister, get, list, sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...models import Agent
from ...wire import AGENT_LIST, Registration, SweepReport
from .. import operations
from .base import _builder, _nothing

if TYPE_CHECKING:
    from ...service import Service

_agent = Agent.model_validate_json


def _registered(s: Service) -> Callable[..., Registration]:
    def register(*args: Any, **kwargs: Any) -> Registration:
        return Registration(agent=s.register(*args, **kwargs))

    return register


register = _builder(operations.register, Registration.model_validate_json, _registered)
heartbeat = _builder(operations.heartbeat, _agent, lambda s: s.heartbeat)
update_agent = _builder(operations.update_agent, _agent, lambda s: s.update_agent)
get_agent = _builder(operations.get_agent, _agent, lambda s: s.get_agent)
list_agents = _builder(operations.list_agents, AGENT_LIST.validate_json, lambda s: s.list_agents)
unregister = _builder(operations.unregister, _nothing, lambda s: s.unregister, forget_token=True)


def _sweep_report(content: bytes) -> dict[str, int]:
    return SweepReport.model_validate_json(content).model_dump()


sweep = _builder(operations.sweep, _sweep_report, lambda s: s.sweep)
