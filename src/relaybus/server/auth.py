"""Who is calling: a bearer token (or none) becomes a :class:`Caller`.

- the admin token (``Settings.token``) acts as anyone in any workspace;
- an agent token (issued by ``POST /v1/agents``, stored as its SHA-256 only)
  acts only as that agent, in its workspace;
- no token is admin in open mode (no admin token, loopback only) and 401 otherwise;
- an unknown or revoked token is 401 in every mode.

The cheap part (headers, the admin token, the rate limit) runs on the event
loop in :func:`api_call`; looking an agent token up in the store is left to
:meth:`ApiRequest.caller`, which a sync route calls in the threadpool thread it
already runs in, so a request costs one thread hop, not two. Lookups are
reused for :attr:`Settings.token_cache_seconds` (:class:`TokenCache`).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Generic, TypeVar, cast, overload

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from .. import bounds
from ..bounds import anchored
from ..errors import Forbidden, InvalidInput, Unauthorized
from ..models import Credential
from ..service.tokens import hash_token

if TYPE_CHECKING:
    from ..service import Service
    from ..settings import Settings
    from .groups import SendGroups
    from .hub import Hub
    from .limits import RateLimiter
    from .metrics import Metrics

T = TypeVar("T")

WORKSPACE_HEADER = "X-Relaybus-Workspace"
EPOCH_HEADER = "X-Relaybus-Epoch"
#: A workspace name: like an agent id, at most 64 characters (the column's width).
WORKSPACE_PATTERN = anchored(bounds.WORKSPACE_PATTERN)
_WORKSPACE_RE = re.compile(WORKSPACE_PATTERN)
#: The largest id or cursor accepted (see :data:`relaybus.bounds.MAX_ID`).
MAX_ID = bounds.MAX_ID


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: admin, one agent (``agent_id``), or one integration
    (``integration``, with what its token may do: ``scopes``, and the ``targets`` and
    ``channels`` it may address).

    ``workspace`` is where this request acts: the agent's or integration's own, or
    for admin the ``X-Relaybus-Workspace`` header (default: the relay's workspace).
    Only routes that ask for integrations (``call.caller(integrations=True)``) ever
    see an integration caller; every other route refuses its token with 403.
    """

    workspace: str
    agent_id: str | None = None
    integration: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def admin(self) -> bool:
        """Whether the caller may act as anyone (the admin token, or open mode)."""
        return self.agent_id is None and self.integration is None

    def require_scope(self, scope: str) -> None:
        """Nothing for admin and agents; for an integration, Forbidden unless its
        token has ``scope`` (the problem names it)."""
        if self.integration is not None and scope not in self.scopes:
            raise Forbidden(
                f"integration {self.integration!r} lacks the scope {scope!r}",
                integration=self.integration,
                scope=scope,
            )

    def act_as(self, agent_id: str | None, field: str = "agent_id") -> str:
        """The agent this request acts as: ``agent_id``, or the caller's own agent
        when it is omitted.

        Raises:
            Forbidden: an agent token naming another agent; an integration token.
            InvalidInput: admin without an agent to act as.
        """
        if self.integration is not None:
            raise Forbidden(f"integration {self.integration!r} cannot act as an agent", field=field)
        if agent_id is None:
            if self.agent_id is None:
                raise InvalidInput(f"name the agent to act as ({field})", field=field)
            return self.agent_id
        if self.agent_id is not None and agent_id != self.agent_id:
            raise Forbidden(
                f"this token acts as {self.agent_id!r} only, not as {agent_id!r}",
                agent=agent_id,
            )
        return agent_id

    def require_admin(self, action: str) -> None:
        """Raises Forbidden unless the caller is admin; ``action`` names what was refused."""
        if not self.admin:
            kind = "an agent" if self.integration is None else "an integration"
            raise Forbidden(f"{action} needs the admin token; {kind} token cannot do it")


class TokenCache:
    """Agent tokens this server has looked up recently: digest -> credential.

    A hit saves the store read that authenticating an agent token costs
    (about as much as a send). Entries live ``seconds``; the routes that
    revoke tokens (register, unregister, prune) :meth:`forget` them at once,
    so on this server a revoked token fails immediately, and one revoked by
    another process (the CLI, another replica) fails within ``seconds``.
    Unknown tokens are never cached. Thread-safe; ``seconds=0`` disables it.
    """

    def __init__(self, seconds: float, *, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Credential, float]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Credential | None:
        """The cached credential of a token digest, unless absent or expired."""
        entry = self._entries.get(token_hash)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, token_hash: str, credential: Credential) -> None:
        """Remember a token's credential for :attr:`seconds`."""
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # rare: more live tokens than entries; start over
            self._entries[token_hash] = (credential, time.monotonic() + self.seconds)

    def forget(
        self, workspace: str, agent_id: str | None = None, *, integration: str | None = None
    ) -> None:
        """Drop the entries of one agent or integration (or, with neither, of a
        workspace)."""
        with self._lock:
            stale = [
                digest
                for digest, (credential, _) in self._entries.items()
                if credential.workspace == workspace
                and (agent_id is None or credential.agent_id == agent_id)
                and (integration is None or credential.integration == integration)
            ]
            for digest in stale:
                del self._entries[digest]


@dataclass(frozen=True, slots=True)
class ServerContext:
    """What every route needs, built once per app by ``create_app``."""

    service: Service
    config: Settings
    metrics: Metrics
    auth: Authenticator
    hub: Hub
    #: The group-commit queue of ``POST /v1/messages``.
    sends: SendGroups


class Authenticator:
    """Turns a bearer token and a workspace header into a :class:`Caller`.

    Args:
        limiter: the per-token rate limit, or None for none.
        default_workspace: the workspace of an admin request without the header.
    """

    def __init__(
        self,
        service: Service,
        config: Settings,
        *,
        limiter: RateLimiter | None = None,
        default_workspace: str = "default",
    ) -> None:
        self.service = service
        self.limiter = limiter
        self.default_workspace = default_workspace
        self._admin = None if config.admin_token is None else config.admin_token.encode("utf-8")
        metrics = config.metrics_token or None  # empty: none, as RELAYBUS_METRICS_TOKEN=
        self._metrics = None if metrics is None else metrics.encode("utf-8")
        self.cache = TokenCache(config.token_cache_seconds)

    @property
    def open(self) -> bool:
        """Open mode: no admin token, so a request without a token is admin."""
        return self._admin is None

    def check(
        self, token: str | None, workspace: str | None, client: str | None
    ) -> tuple[Caller | None, str | None]:
        """The part of authentication that needs no store (event loop safe).

        Returns:
            ``(caller, None)`` when the token settles it (admin or open mode), or
            ``(None, token_hash)`` for an agent token still to look up
            (:meth:`lookup`).

        Raises:
            Unauthorized: no token while the server has an admin token.
            RateLimited: over the rate limit (key: the token's digest, else
                ``client``).
            InvalidInput: a malformed workspace name.
        """
        digest = hash_token(token) if token is not None else None
        if self.limiter is not None:
            self.limiter.take(digest or f"addr:{client}")
        if workspace is not None and not _WORKSPACE_RE.match(workspace):
            raise InvalidInput(
                f"invalid workspace {workspace!r}: use 1-64 letters, digits and . _ - @ /",
                field="workspace",
            )
        if token is None:
            if self._admin is not None:
                raise Unauthorized(
                    "this relay needs a token: send 'Authorization: Bearer <token>' "
                    "(RELAYBUS_TOKEN)"
                )
            return Caller(workspace or self.default_workspace), None
        if self._admin is not None and secrets.compare_digest(token.encode("utf-8"), self._admin):
            return Caller(workspace or self.default_workspace), None
        return None, digest

    def check_metrics(self, token: str | None) -> None:
        """Whether ``token`` may read ``/metrics``: any request when the server has
        neither an admin nor a metrics token, else only those two tokens (an
        agent token may not: the metrics span every workspace).

        Raises:
            Unauthorized: no token, or another token.
        """
        accepted = [s for s in (self._metrics, self._admin) if s is not None]
        if not accepted:
            return
        if token is None:
            raise Unauthorized(
                "/metrics needs a token on this server: the metrics token "
                "(RELAYBUS_METRICS_TOKEN) or the admin token"
            )
        given = token.encode("utf-8")
        # Compare with both, always: the time taken says nothing about which matched.
        if sum(secrets.compare_digest(given, secret) for secret in accepted) == 0:
            raise Unauthorized(
                "this token may not read /metrics: use the metrics token "
                "(RELAYBUS_METRICS_TOKEN) or the admin token"
            )

    def lookup(
        self, token_hash: str, workspace: str | None, *, integrations: bool = False
    ) -> Caller:
        """The agent (or, with ``integrations``, the integration) a token acts as (one
        store read; blocking).

        Raises:
            Unauthorized: an unknown or revoked token.
            Forbidden: ``workspace`` is not the token's workspace; an integration's
                token where ``integrations`` is false.
        """
        credential = self.cache.get(token_hash)
        if credential is None:
            credential = self.service.authenticate(token_hash)
            if credential is not None:
                self.cache.put(token_hash, credential)
        if credential is None:
            raise Unauthorized(
                "unknown or revoked token: an agent registers again for a new one, an "
                "integration gets one from relaybus integration rotate"
            )
        return self._acting(credential, workspace, integrations)

    def cached(
        self, token_hash: str, workspace: str | None, *, integrations: bool = False
    ) -> Caller | None:
        """:meth:`lookup` when the token is in :attr:`cache` (no store read: event loop
        safe), else None.

        Raises:
            Forbidden: ``workspace`` is not the token's workspace.
        """
        credential = self.cache.get(token_hash)
        return None if credential is None else self._acting(credential, workspace, integrations)

    def _acting(
        self, credential: Credential, workspace: str | None, integrations: bool = False
    ) -> Caller:
        if workspace is not None and workspace != credential.workspace:
            raise Forbidden(
                f"this token belongs to workspace {credential.workspace!r}, not {workspace!r}",
                workspace=workspace,
            )
        if credential.integration is not None:
            if not integrations:
                raise integration_refused(credential.integration)
            return Caller(
                credential.workspace,
                integration=credential.integration,
                scopes=credential.scopes,
            )
        return Caller(credential.workspace, credential.agent_id)

    async def authenticate(
        self, token: str | None, workspace: str | None, client: str | None
    ) -> Caller:
        """:meth:`check` then, for an agent token, :meth:`lookup` in a worker thread
        (for streams and WebSockets, which run on the event loop).

        Raises:
            Unauthorized, Forbidden, RateLimited, InvalidInput: see above.
        """
        caller, digest = self.check(token, workspace, client)
        if caller is not None:
            return caller
        assert digest is not None
        return await run_in_threadpool(self.lookup, digest, workspace)


def integration_refused(name: str) -> Forbidden:
    """The refusal of integration ``name``'s token on a route that serves only agents
    and admins."""
    return Forbidden(
        f"integration {name!r} may call only the integration routes: POST "
        "/v1/integrations/events and POST /v1/tasks (tasks:create), GET /v1/tasks "
        "(tasks:read), POST /v1/messages (messages:send) and its own "
        "/v1/integrations/{name}",
        integration=name,
    )


class _FromContext(Generic[T]):
    """An attribute of an :class:`ApiRequest` that is the one of the same name of
    its :class:`ServerContext` (``call.service`` is ``call.context.service``)."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, request: None, owner: type) -> _FromContext[T]: ...

    @overload
    def __get__(self, request: ApiRequest, owner: type | None = None) -> T: ...

    def __get__(self, request: ApiRequest | None, owner: type | None = None) -> T | _FromContext[T]:
        if request is None:  # on the class: the descriptor itself
            return self
        return cast(T, getattr(request.context, self.name))


@dataclass(slots=True, eq=False, repr=False)
class ApiRequest:
    """One API request: the server context, and who is calling.

    Routes get it from :func:`api_call`; ``caller()`` finishes authentication
    (blocking for agent tokens: call it from a sync route or through
    :meth:`resolve`).
    """

    context: ServerContext
    _caller: Caller | None
    _digest: str | None
    _workspace: str | None

    #: The relay's service layer.
    service: ClassVar[_FromContext[Service]] = _FromContext()
    #: The server's metrics.
    metrics: ClassVar[_FromContext[Metrics]] = _FromContext()
    #: The server's settings.
    config: ClassVar[_FromContext[Settings]] = _FromContext()
    #: The server's live delivery (see :meth:`Hub.publish` after a write).
    hub: ClassVar[_FromContext[Hub]] = _FromContext()

    def caller(self, *, integrations: bool = False) -> Caller:
        """Who is calling (queries the store once for an agent token).

        Args:
            integrations: the route serves integrations too (it checks their scopes);
                elsewhere an integration's token is refused.

        Raises:
            Unauthorized: an unknown or revoked token.
            Forbidden: another workspace than the token's; an integration's token on
                a route that does not serve integrations.
        """
        if self._caller is None:
            assert self._digest is not None
            self._caller = self.context.auth.lookup(
                self._digest, self._workspace, integrations=integrations
            )
        elif self._caller.integration is not None and not integrations:
            raise integration_refused(self._caller.integration)
        return self._caller

    async def resolve(self, *, integrations: bool = False) -> Caller:
        """:meth:`caller` from async code: the store lookup runs in a worker thread,
        unless the token is cached (:meth:`Authenticator.cached`)."""
        if self._caller is None and self._digest is not None:
            self._caller = self.context.auth.cached(
                self._digest, self._workspace, integrations=integrations
            )
        if self._caller is None:
            return await run_in_threadpool(lambda: self.caller(integrations=integrations))
        return self.caller(integrations=integrations)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None without one).

    Raises:
        Unauthorized: a header that is not a bearer token.
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token


def quick_call(request: Request) -> tuple[ApiRequest, int | None] | None:
    """:func:`api_call` and the ``Epoch`` header without FastAPI's dependency machinery,
    for hot routes (see ``routes.LeanRoute``).

    Returns:
        ``(call, epoch)``, or None when a header is malformed, so that the
        ordinary path reports it exactly as documented (422).

    Raises:
        Unauthorized, RateLimited: as :func:`api_call`.
    """
    headers = request.headers
    workspace = headers.get(WORKSPACE_HEADER)
    if workspace is not None and not _WORKSPACE_RE.match(workspace):
        return None
    epoch: int | None = None
    raw_epoch = headers.get(EPOCH_HEADER)
    if raw_epoch is not None:
        try:
            epoch = int(raw_epoch)
        except ValueError:
            return None
        if not 0 <= epoch <= MAX_ID:
            return None
    context: ServerContext = request.app.state.context
    client = request.client.host if request.client is not None else None
    token = bearer_token(headers.get("authorization"))
    caller, digest = context.auth.check(token, workspace, client)
    return ApiRequest(context, caller, digest, workspace), epoch


class BearerToken(HTTPBearer):
    """``Authorization: Bearer <token>`` (optional). Declares the scheme in OpenAPI;
    a header that is present but not a bearer token is refused, not ignored."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="bearer",
            description="The admin token, or an agent token from POST /v1/agents. "
            "Optional on a loopback server without an admin token.",
        )

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return None
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


BEARER = BearerToken()


async def api_call(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    workspace: Annotated[
        str | None,
        Header(
            alias=WORKSPACE_HEADER,
            pattern=WORKSPACE_PATTERN,
            description="The workspace to act in (default: the token's, else the relay's).",
        ),
    ] = None,
) -> ApiRequest:
    """The FastAPI dependency of every ``/v1`` route: checks the token and the
    rate limit without touching the store.

    Raises:
        Unauthorized, RateLimited, InvalidInput: see :meth:`Authenticator.check`.
    """
    context: ServerContext = request.app.state.context
    client = request.client.host if request.client is not None else None
    token = bearer.credentials if bearer is not None else None
    caller, digest = context.auth.check(token, workspace, client)
    return ApiRequest(context, caller, digest, workspace)


#: The request's :class:`ApiRequest` (the auth dependency).
ApiCall = Annotated[ApiRequest, Depends(api_call)]
#: ``X-Relaybus-Epoch``: act only while the agent is at this registration epoch (409 if not).
Epoch = Annotated[
    int | None,
    Header(
        alias=EPOCH_HEADER,
        ge=0,
        le=MAX_ID,
        description="Act only while the agent is still at this registration epoch (else 409).",
    ),
]
