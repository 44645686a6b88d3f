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

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON object: ``{"error": title, "message": ..., **details}``."""
        return {"error": self.title, "message": self.message, **self.details}


class InvalidInput(RelayError):
    """The request itself is wrong (bad target expression, oversized body, bad status)."""

    status = 400
    exit_code = 2
    title = "invalid input"


class TooLarge(InvalidInput):
    """A body or payload is over its configured limit (bytes)."""

    status = 413
    title = "too large"


class NotFound(RelayError):
    """An agent, message or task that does not exist, or a target that matches nobody."""

    status = 404
    exit_code = 2
    title = "not found"


class Conflict(RelayError):
    """The request is valid but the state forbids it: a stale epoch, a task held by
    another agent, an invalid status transition."""

    status = 409
    title = "conflict"


class Unauthorized(RelayError):
    """No credentials, or credentials the relay does not know (HTTP 401)."""

    status = 401
    title = "unauthorized"


class Forbidden(RelayError):
    """The caller may not act as that agent or on that object."""

    status = 403
    title = "forbidden"


class StoreError(RelayError):
    """The store cannot be opened or migrated (wrong path, newer schema, locked)."""

    status = 503
    title = "store unavailable"


class NoRelay(StoreError):
    """There is no relay database at the location found, and the call does not create
    one (a read, or a write that needs existing agents, messages or tasks)."""

    exit_code = 2
    title = "no relay"


class RateLimited(RelayError):
    """Too many requests for this token; ``retry_after`` (seconds) says when to retry."""

    status = 429
    title = "too many requests"

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
