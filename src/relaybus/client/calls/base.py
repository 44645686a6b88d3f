"""What every call builder shares: one :class:`Call` from an operation's request
builder and the same operation on an embedded service, and parsers of the API's answers.

The parsers import :mod:`relaybus.wire` when they first run: an embedded relay (the
CLI with ``RELAYBUS_DAEMON=0``) parses no answer, so it never imports it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ..request import Request
from ..transport import Call

if TYPE_CHECKING:
    from ...models import Agent, Delivery, Event, Message, Task, TaskEvent
    from ...service import Service

P = ParamSpec("P")
T = TypeVar("T")


def _builder(
    request: Callable[P, Request],
    parse: Callable[[bytes], T],
    local: Callable[[Service], Callable[P, T]],
    *,
    forget_token: bool = False,
) -> Callable[P, Call[T]]:
    """The call builder of one operation, with the arguments (and the name and
    docstring) of ``request``, its builder in :mod:`relaybus.client.operations`: its
    :class:`Call` sends ``request(*args, **kwargs)`` over HTTP and reads the answer with
    ``parse``; embedded, it calls ``local(service)`` (the service's method of the same
    name, which takes the same arguments) with them. ``forget_token``: as for
    :class:`Call`."""

    def build(*args: P.args, **kwargs: P.kwargs) -> Call[T]:
        sent = request(*args, **kwargs)
        return Call(sent, parse, lambda s: local(s)(*args, **kwargs), forget_token)

    functools.update_wrapper(build, request)
    build.__module__ = local.__module__  # the calls module that defines it
    return build


def _nothing(_: bytes) -> None:
    return None


def _marked(content: bytes) -> int:
    from ...wire import Marked

    return Marked.model_validate_json(content).marked


def _unread(content: bytes) -> int:
    from ...wire import UnreadCount

    return UnreadCount.model_validate_json(content).unread


def _agents(content: bytes) -> list[Agent]:
    from ...wire import AGENT_LIST

    return AGENT_LIST.validate_json(content)


def _messages(content: bytes) -> list[Message]:
    from ...wire import MESSAGE_LIST

    return MESSAGE_LIST.validate_json(content)


def _deliveries(content: bytes) -> list[Delivery]:
    from ...wire import DELIVERY_LIST

    return DELIVERY_LIST.validate_json(content)


def _tasks(content: bytes) -> list[Task]:
    from ...wire import TASK_LIST

    return TASK_LIST.validate_json(content)


def _task_events(content: bytes) -> list[TaskEvent]:
    from ...wire import TASK_EVENT_LIST

    return TASK_EVENT_LIST.validate_json(content)


def _events(content: bytes) -> list[Event]:
    from ...wire import EVENT_LIST

    return EVENT_LIST.validate_json(content)
