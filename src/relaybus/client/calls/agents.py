"""Agent calls: register, heartbeat, update, unregister, get, list, sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...models import Agent
from .. import operations
from .base import _agents, _builder, _nothing

if TYPE_CHECKING:
    from ...service import Service
    from ...wire import Registration

_agent = Agent.model_validate_json


def _registered(s: Service) -> Callable[..., Registration]:
    def register(*args: Any, **kwargs: Any) -> Registration:
        from ...wire import Registration

        return Registration(agent=s.register(*args, **kwargs))

    return register


def _registration(content: bytes) -> Registration:
    from ...wire import Registration

    return Registration.model_validate_json(content)


register = _builder(operations.register, _registration, _registered)
heartbeat = _builder(operations.heartbeat, _agent, lambda s: s.heartbeat)
update_agent = _builder(operations.update_agent, _agent, lambda s: s.update_agent)
get_agent = _builder(operations.get_agent, _agent, lambda s: s.get_agent)
list_agents = _builder(operations.list_agents, _agents, lambda s: s.list_agents)
unregister = _builder(operations.unregister, _nothing, lambda s: s.unregister, forget_token=True)


def _sweep_report(content: bytes) -> dict[str, int]:
    from ...wire import SweepReport

    return SweepReport.model_validate_json(content).model_dump()


sweep = _builder(operations.sweep, _sweep_report, lambda s: s.sweep)
