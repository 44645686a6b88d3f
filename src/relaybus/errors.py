"""The one exception hierarchy of relaybus.

Every error a caller can act on is a :class:`RelayError`. Transports map the
class to a status in one place (HTTP status, CLI exit code): see
:attr:`RelayError.status` and :attr:`RelayError.exit_code`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RelayError(Exception):
    """Base of every relaybus error.

    Attributes:
        message: one human sentence saying what went wrong and, where it helps,
            what to do instead.
        details: machine-readable context (JSON-serialisable), e.g. the target
            that matched nobody and the close matches.
    """

    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    title: ClassVar[str] = "relay error"

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        exit_code: int | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        """A subclass states what differs from its base as class keywords:
        ``class NotFound(RelayError, status=404, exit_code=2, title="not found")``."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if exit_code is not None:
            cls.exit_code = exit_code
        if title is not None:
            cls.title = title

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON object: ``{"error": title, "message": ..., **details}``."""
        return {"error": self.title, "message": self.message, **self.details}


class InvalidInput(RelayError, status=400, exit_code=2, title="invalid input"):
    """The request itself is wrong (bad target expression, oversized body, bad status)."""


class TooLarge(InvalidInput, status=413, title="too large"):
    """A body or payload is over its configured limit (bytes)."""


class NotFound(RelayError, status=404, exit_code=2, title="not found"):
    """An agent, message or task that does not exist, or a target that matches nobody."""


class Conflict(RelayError, status=409, title="conflict"):
    """The request is valid but the state forbids it: a stale epoch, a task held by
    another agent, an invalid status transition."""


class Unauthorized(RelayError, status=401, title="unauthorized"):
    """No credentials, or credentials the relay does not know (HTTP 401)."""


class Forbidden(RelayError, status=403, title="forbidden"):
    """The caller may not act as that agent or on that object."""


class StoreError(RelayError, status=503, title="store unavailable"):
    """The store cannot be opened or migrated (wrong path, newer schema, locked)."""


class NoRelay(StoreError, exit_code=2, title="no relay"):
    """There is no relay database at the location found, and the call does not create
    one (a read, or a write that needs existing agents, messages or tasks)."""


class RateLimited(RelayError, status=429, title="too many requests"):
    """Too many requests for this token; ``retry_after`` (seconds) says when to retry."""

    def __init__(self, message: str, *, retry_after: float, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


#: The errors that have an HTTP status of their own (4xx), one a status: the server
#: titles its problems after them, a client rebuilds the error of a refusal's status.
REFUSALS: tuple[type[RelayError], ...] = (
    InvalidInput,
    TooLarge,
    NotFound,
    Conflict,
    Unauthorized,
    Forbidden,
    RateLimited,
)
