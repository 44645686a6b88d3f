"""What every call builder shares: result adapters, path helpers, the registration answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ...models import Agent, Delivery, Event, Message, Task, TaskEvent

_AGENTS = TypeAdapter(list[Agent])
_MESSAGES = TypeAdapter(list[Message])
_DELIVERIES = TypeAdapter(list[Delivery])
_TASKS = TypeAdapter(list[Task])
_TASK_EVENTS = TypeAdapter(list[TaskEvent])
_EVENTS = TypeAdapter(list[Event])
_COUNTS = TypeAdapter(dict[str, int])


class Registration(BaseModel):
    """The answer to a registration: the agent, and the bearer token the server
    issued for it (``None`` on an embedded relay)."""

    model_config = ConfigDict(frozen=True)

    agent: Agent
    token: str | None = None


def _nothing(_: bytes) -> None:
    return None


def _field(name: str) -> Callable[[bytes], int]:
    def parse(content: bytes) -> int:
        return int(json.loads(content)[name])

    return parse


def _segment(value: str | int) -> str:
    # An agent id may hold "/" and "@": one path segment, percent-encoded.
    return quote(str(value), safe="")


def _agent_path(agent_id: str, rest: str = "") -> str:
    return f"/v1/agents/{_segment(agent_id)}{rest}"


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
