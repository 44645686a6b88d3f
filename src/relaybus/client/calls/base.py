"""What every call builder shares: one :class:`Call` from an operation's request
builder and the same operation on an embedded service, and parsers of the API's answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ...wire import Marked, UnreadCount
from ..operations import Request
from ..transport import Call

if TYPE_CHECKING:
    from ...service import Service

P = ParamSpec("P")
T = TypeVar("T")


def _call(
    request: Callable[P, Request],
    parse: Callable[[bytes], T],
    local: Callable[[Service], Callable[P, T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> Call[T]:
    """The :class:`Call` of one operation, its arguments given once: ``request(*args,
    **kwargs)`` (a builder of :mod:`relaybus.client.operations`) over HTTP, its answer
    read by ``parse``; embedded, ``local(service)`` (the service's method of the same
    name and arguments) called with them."""
    return Call(request(*args, **kwargs), parse, lambda s: local(s)(*args, **kwargs))


def _nothing(_: bytes) -> None:
    return None


def _marked(content: bytes) -> int:
    return Marked.model_validate_json(content).marked


def _unread(content: bytes) -> int:
    return UnreadCount.model_validate_json(content).unread
