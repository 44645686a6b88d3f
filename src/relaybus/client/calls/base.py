"""What every call builder shares: path helpers, and parsers of the API's answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from ...models import AgentStatus, Priority, Via
from ...wire import Marked, UnreadCount
from ..transport import Call

if TYPE_CHECKING:
    from ...service import Service

T = TypeVar("T")


def _nothing(_: bytes) -> None:
    return None


def _marked(content: bytes) -> int:
    return Marked.model_validate_json(content).marked


def _unread(content: bytes) -> int:
    return UnreadCount.model_validate_json(content).unread


def _segment(value: str | int) -> str:
    # An agent id may hold "/" and "@": one path segment, percent-encoded.
    return quote(str(value), safe="")


def _agent_path(agent_id: str, rest: str = "") -> str:
    return f"/v1/agents/{_segment(agent_id)}{rest}"


def _get(
    path: str,
    parse: Callable[[bytes], T],
    local: Callable[[Service], T],
    *,
    workspace: str,
    agent: str | None = None,
    epoch: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> Call[T]:
    """A read: ``GET path`` (already percent-encoded) answered by ``parse`` over HTTP,
    ``local(service)`` embedded; the other fields as for :class:`Call`."""
    return Call(
        method="GET",
        path=path,
        parse=parse,
        local=local,
        workspace=workspace,
        agent=agent,
        epoch=epoch,
        params=params,
    )


def _waiting(
    call: Call[T], timeout: float, local: Callable[[Service, float], T], **params: Any
) -> Call[T]:
    """``call`` (a read) as one long-poll: the server holds the request up to ``timeout``
    seconds (``?wait=``, after ``call``'s query and ``params``) and answers as soon as
    there is something; ``local(service, timeout)`` is the embedded service's wait.
    A negative ``timeout`` is 0 (no wait)."""
    timeout = max(timeout, 0.0)
    query = {**(call.params or {}), **params, "wait": round(timeout, 3)}
    return dataclasses.replace(call, params=query, local=lambda s: local(s, timeout), wait=timeout)


# A body holds the values as the caller gave them (a str for an enum, any mapping or
# sequence), as the hand-written bodies did: the transport encodes them and the
# server checks them (its 400/422 is the caller's InvalidInput).


def _status(value: AgentStatus | str | None) -> AgentStatus | None:
    return cast(AgentStatus | None, value)


def _priority(value: Priority | str) -> Priority:
    return cast(Priority, value)


def _via(value: Via | str) -> Via:
    return cast(Via, value)


def _object(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return cast(dict[str, Any] | None, value)


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)
