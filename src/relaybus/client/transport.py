"""How one call travels over HTTP.

:class:`Call` is one operation for both transports: its HTTP request (a
:class:`~relaybus.client.request.Request`, written once in
:mod:`relaybus.client.operations`), how to parse the answer, and the same operation on
an embedded service; :class:`HTTPSession` turns calls into httpx requests and responses
into results or the :class:`~relaybus.errors.RelayError` subclasses the embedded mode
raises. The sync and async clients share both and differ only in the httpx client that
sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from ..errors import REFUSALS, InvalidInput, RateLimited, RelayError, StoreError
from ..settings import Settings
from .request import CONNECT_TIMEOUT, LONGPOLL_MARGIN, READ_TIMEOUT, RETRY_PAUSES, Request

if TYPE_CHECKING:
    import ssl

    import httpx

    from ..models import Agent, Event  # for types only: the warm CLI path imports no pydantic
    from ..service import Service


T = TypeVar("T")

#: Reconnect backoff of live streams: the first delay and the cap (seconds).
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0

NEEDS_DATABASE = (
    "this command needs the database; run it on the server or pass --database "
    "(RELAYBUS_URL points at a relay server)"
)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One relay operation, described for both transports: its HTTP request (written
    once, in :mod:`relaybus.client.operations`) and what the SDK adds on top.

    Attributes:
        request: the HTTP request (method, path, query, body, who acts, idempotency
            key, long-poll wait).
        parse: the response body (bytes) → the result.
        local: the same operation on an embedded
            :class:`~relaybus.service.Service` (a relay without a server).
        forget_token: the call ends the agent (unregister): drop its token.
    """

    request: Request
    parse: Callable[[bytes], T]
    local: Callable[[Service], T]
    forget_token: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamQuery:
    """What a live stream follows (:meth:`AsyncRelay.stream`, an agent's ``messages``):
    one value from the relay through its backend to :func:`~relaybus.client.streams.follow`.

    Attributes:
        workspace: the workspace whose events these are.
        since: start after this event id; ``None`` starts at "now".
        agent: watch as this agent (a server only): what it may see, with its token
            when the session has it.
        kinds: only these kinds (``"task."`` matches a family); ``None``: every kind.
        max_backoff: the longest pause between reconnects (seconds).
        give_up_after: raise once the server has been unreachable this many
            seconds; ``None`` retries for ever.
    """

    workspace: str
    since: int | None = None
    agent: str | None = None
    kinds: Sequence[str] | None = None
    max_backoff: float = BACKOFF_CAP
    give_up_after: float | None = None


class ReadResponse(Protocol):
    """A read HTTP response, as :func:`problem_error` reads it (an ``httpx.Response``,
    or the warm relay's ``http.client`` answer)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class TokenHolder(Protocol):
    """What :class:`HTTPSession` learns from a registration."""

    agent: Agent
    token: str | None


#: HTTP status → the error the embedded mode raises for the same refusal (429 aside:
#: :func:`problem_error` adds its ``retry_after``).
STATUS_ERRORS: dict[int, type[RelayError]] = {cls.status: cls for cls in REFUSALS}
STATUS_ERRORS[422] = InvalidInput
#: Problem fields that are not error details.
_PROBLEM_KEYS = frozenset({"type", "title", "status", "detail", "instance", "error", "message"})


def check_url(url: str) -> str:
    """``url`` without a trailing slash.

    Raises:
        InvalidInput: not an ``http://`` or ``https://`` URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"RELAYBUS_URL={url!r} is not a relay server address like http://127.0.0.1:4850",
            setting="RELAYBUS_URL",
        )
    return url.strip().rstrip("/")


class HTTPSession:
    """Requests and responses of one relay server, shared by the sync and async clients.

    Holds the per-agent tokens the server issued at registration. The bearer of a
    call is ``settings.token`` (``RELAYBUS_TOKEN``: an admin token, or one agent's
    own token) when set; otherwise the token of the agent the call acts as, if
    this session registered it; otherwise none (a loopback server in open mode).
    """

    def __init__(self, settings: Settings) -> None:
        if settings.url is None:
            raise InvalidInput("no relay server address: set RELAYBUS_URL")
        self.settings = settings
        self.url = check_url(settings.url)
        self._tokens: dict[tuple[str, str], str] = {}

    @property
    def tokens(self) -> dict[str, str]:
        """Agent id → the token the server issued when this session registered it
        (a copy; every workspace)."""
        return {agent: token for (_, agent), token in self._tokens.items()}

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        """The token issued to ``agent_id`` of ``workspace`` through this session."""
        return self._tokens.get((workspace, agent_id))

    def remember(self, registration: TokenHolder) -> None:
        """Keep the token of a registration (the server's answer to ``POST /v1/agents``)."""
        if registration.token is not None:
            agent = registration.agent
            self._tokens[(agent.workspace, agent.id)] = registration.token

    def bearer(self, workspace: str, agent: str | None) -> str | None:
        """The token a call acting as ``agent`` (or as nobody) sends."""
        if self.settings.token:
            return self.settings.token
        if agent is not None:
            return self._tokens.get((workspace, agent))
        return None

    def headers(
        self, workspace: str, agent: str | None = None, epoch: int | None = None
    ) -> dict[str, str]:
        """Workspace, epoch and authorization headers of a request."""
        headers = {"X-Relaybus-Workspace": workspace}
        if epoch is not None:
            headers["X-Relaybus-Epoch"] = str(epoch)
        token = self.bearer(workspace, agent)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def request(self, call: Call[Any]) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` for ``call``."""
        import httpx

        request = call.request
        headers, content = request.encode(self.bearer(request.workspace, request.agent))
        found: dict[str, Any] = {
            "method": request.method,
            "url": request.path,
            "params": request.query(),
            "content": content,
            "headers": headers,
        }
        if request.wait > 0:
            found["timeout"] = httpx.Timeout(
                request.wait + LONGPOLL_MARGIN, connect=CONNECT_TIMEOUT
            )
        return found

    def result(self, call: Call[T], response: httpx.Response) -> T:
        """The result of ``call`` from its (read) response.

        Raises:
            RelayError: the subclass matching the response status (see :func:`problem_error`).
        """
        if response.status_code >= 400:
            raise problem_error(response, self.url)
        value = call.parse(response.content)
        request = call.request
        if call.forget_token and request.agent is not None:
            self._tokens.pop((request.workspace, request.agent), None)
        return value

    def revoked(self, response: httpx.Response, workspace: str, agent: str | None) -> bool:
        """Whether ``response`` refused a token this session holds for ``agent``
        (revoked: the agent registered again elsewhere, or was removed). The token
        is dropped; the caller sends the request once more without it, so that an
        open-mode server answers as the embedded mode would (e.g. Conflict for a
        stale epoch) and a token-mode server says 401.
        """
        if response.status_code != 401 or self.settings.token or agent is None:
            return False
        return self._tokens.pop((workspace, agent), None) is not None

    def unreachable(self, exc: Exception, call: Call[Any] | None = None) -> StoreError:
        """The error for a request that got no answer (refused, reset, timed out).

        For a call with an idempotency key, the message and ``details`` name the
        key: the call may have happened, and repeating it with that key is safe.
        """
        reason = str(exc) or type(exc).__name__
        message = f"cannot reach relay server at {self.url}: {reason}"
        key = call.request.idempotency_key if call is not None else None
        if key is None:
            return StoreError(message, url=self.url)
        return StoreError(
            f"{message} (it may have been sent: retry with idempotency_key={key!r} "
            "to send it at most once)",
            url=self.url,
            idempotency_key=key,
        )


def retries(call: Call[Any]) -> int:
    """How many times a call is sent when the connection breaks before its answer
    (a keep-alive connection the server closed, a replica that died, a connection
    refused): up to three times for a GET and for a call with an idempotency key,
    which the server performs at most once, else once (a plain POST must not happen
    twice). A timeout is never retried.

    The attempts are a moment apart (:func:`retry_pause`: about 0.1 s, then about
    0.4 s), not back to back: a replica that is dying still accepts connections for a
    moment, and a load balancer keeps routing to it until it notices, so a request
    sent again at once can reach it and be dropped again. The pause also spreads out
    the clients that one dead replica cut off together."""
    return call.request.attempts()


def retry_pause(attempt: int) -> float:
    """The pause (seconds) before attempt number ``attempt`` (2 or 3) of a call that
    :func:`retries` sends again: :data:`RETRY_PAUSES`, each drawn uniformly from
    [p/2, p] (jitter, as :class:`~relaybus.client.streams.Backoff`)."""
    import random

    ceiling = RETRY_PAUSES[attempt - 2]
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class AsyncRetryPause:
    """The pause between two attempts of a call, for the asyncio client
    (``scripts/unasync.py`` makes :class:`RetryPause` of the sync client from the name)."""

    @staticmethod
    async def before(attempt: int) -> None:
        """Sleep :func:`retry_pause` ``(attempt)`` seconds."""
        import asyncio

        await asyncio.sleep(retry_pause(attempt))


class RetryPause:
    """:class:`AsyncRetryPause` for the sync client: blocks the calling thread."""

    @staticmethod
    def before(attempt: int) -> None:
        """Sleep :func:`retry_pause` ``(attempt)`` seconds."""
        import time

        time.sleep(retry_pause(attempt))


def new_client(url: str, *, asynchronous: bool = False) -> Any:
    """An ``httpx.Client`` (or ``AsyncClient``) for the server at ``url``: keep-alive
    connections, the relay's timeouts, a relaybus User-Agent."""
    import httpx

    from .. import __version__

    options: dict[str, Any] = {
        "base_url": url,
        "timeout": httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        "headers": {"User-Agent": f"relaybus/{__version__}"},
    }
    tls = unused_tls(url)
    if tls is not None:
        options["verify"] = tls
    return httpx.AsyncClient(**options) if asynchronous else httpx.Client(**options)


_no_ca_context: ssl.SSLContext | None = None


def unused_tls(url: str) -> ssl.SSLContext | None:
    """The TLS settings (httpx's ``verify=``) of a client for ``url``: ``None`` (httpx's
    default, the CA bundle) for ``https``; for plain ``http``, a shared context that
    trusts no certificate, so TLS never succeeds through it. httpx builds its TLS
    context when the client is made, whatever the scheme, and loading the CA bundle
    costs about 30 ms of CPU, which a command talking plain HTTP to a relay on
    loopback would pay for nothing."""
    global _no_ca_context
    if urlsplit(url).scheme != "http":
        return None
    if _no_ca_context is None:
        import ssl

        _no_ca_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, trusts nobody
    return _no_ca_context


def new_async_client(url: str) -> Any:
    """:func:`new_client` for asyncio: an ``httpx.AsyncClient``."""
    return new_client(url, asynchronous=True)


def problem_error(response: ReadResponse, url: str) -> RelayError:
    """The :class:`~relaybus.errors.RelayError` for an error response.

    A problem+json ``detail`` becomes the message (the one the embedded mode
    gives); its extra members become ``details``. 400/422 → InvalidInput,
    401 → Unauthorized, 403 → Forbidden, 404 → NotFound, 409 → Conflict,
    413 → TooLarge, 429 → RateLimited (``retry_after`` from ``Retry-After``),
    503 with a problem → StoreError with its detail, other 5xx → StoreError
    naming the server.
    """
    status = response.status_code
    problem: dict[str, Any] = {}
    try:
        decoded = json.loads(response.content) if response.content else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        problem = decoded
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = str(problem.get("title") or response.reason_phrase or f"HTTP {status}")
    details = {k: v for k, v in problem.items() if k not in _PROBLEM_KEYS}
    if status == 429:
        details.pop("retry_after", None)
        return RateLimited(detail, retry_after=_retry_after(response, problem), **details)
    error_class = STATUS_ERRORS.get(status)
    if error_class is not None:
        return error_class(detail, **details)
    if status == 503 and problem:
        return StoreError(detail, **details)
    if status >= 500:
        return StoreError(
            f"relay server at {url} failed: {status} {response.reason_phrase}: {detail}",
            status=status,
            **details,
        )
    return InvalidInput(f"relay server at {url} refused the request: {status} {detail}")


def _retry_after(response: ReadResponse, problem: Mapping[str, Any]) -> float:
    for value in (response.headers.get("Retry-After"), problem.get("retry_after")):
        if isinstance(value, str | int | float):
            try:
                return max(float(value), 0.0)
            except ValueError:
                continue
    return 1.0


def matches(kind: str, kinds: Sequence[str]) -> bool:
    """Whether an event ``kind`` is one of ``kinds`` (``"task."`` matches a family)."""
    return any(kind.startswith(k) if k.endswith(".") else kind == k for k in kinds)


def delivered_to(event: Event, agent_id: str) -> bool:
    """Whether ``event`` is a ``message.sent`` that delivered a message to ``agent_id``."""
    return event.kind == "message.sent" and agent_id in event.data.get("recipients", ())
