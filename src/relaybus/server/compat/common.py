"""What every ``/api/*`` route shares: the seed's token headers, its JSON bodies
(camelCase, read whatever the Content-Type), its millisecond timestamps.

agent-relay-server clients send their token as ``X-Agent-Relay-Token: <token>`` or
``Authorization: Bearer <token>``; both become the same :class:`~relaybus.server.auth.Caller`
as a ``/v1`` request (the admin token, an agent token, or none in open mode). Its
clients (Bun's ``fetch``, curl's ``-d``) often send JSON without
``Content-Type: application/json``, which the seed's server parses anyway; so do these
routes. The routes are left out of the OpenAPI document (``include_in_schema=False``):
``/v1`` is the API that document describes, ``/api`` the seed's, kept for its clients.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...errors import Unauthorized
from ..auth import WORKSPACE_HEADER, ApiRequest, ServerContext, bearer_token
from ..routes import RelayRoute

B = TypeVar("B", bound=BaseModel)

#: The seed's own token header (the dashboard and its plugins send it).
TOKEN_HEADER = "X-Agent-Relay-Token"


def make_compat_router() -> APIRouter:
    """A router of ``/api/*`` routes: :class:`RelayRoute`s left out of the OpenAPI
    document, tagged ``compat``."""
    return APIRouter(route_class=RelayRoute, include_in_schema=False, tags=["compat"])


async def compat_call(request: Request) -> ApiRequest:
    """The FastAPI dependency of every ``/api`` route: like ``/v1``'s ``api_call``,
    with the token from ``Authorization: Bearer`` or, without that header, from
    ``X-Agent-Relay-Token`` (an empty one counts as none). The workspace is
    ``X-Relaybus-Workspace``'s, as on ``/v1`` (the seed has one namespace).

    Raises:
        Unauthorized: an ``Authorization`` header that is not a bearer token; no
            token while the server has an admin token.
        RateLimited, InvalidInput: see :meth:`~relaybus.server.auth.Authenticator.check`.
    """
    headers = request.headers
    token = bearer_token(headers.get("authorization"))
    if token is None:
        token = headers.get(TOKEN_HEADER, "").strip() or None
    context: ServerContext = request.app.state.context
    workspace = headers.get(WORKSPACE_HEADER)
    client = request.client.host if request.client is not None else None
    try:
        caller, digest = context.auth.check(token, workspace, client)
    except Unauthorized:
        if token is not None:
            raise
        raise Unauthorized(  # the seed's header named too
            f"this relay needs a token: send '{TOKEN_HEADER}: <token>' or "
            "'Authorization: Bearer <token>' (the server's RELAYBUS_TOKEN, or an agent's)"
        ) from None
    return ApiRequest(context, caller, digest, workspace)


#: The request's :class:`ApiRequest`, authenticated the seed's way.
CompatCall = Annotated[ApiRequest, Depends(compat_call)]


#: An agent id in a body: checked here, since some service operations look ids up
#: without checking them, and PostgreSQL refuses to compare text holding NUL (a 500).
AgentName = Annotated[str, Field(pattern=anchored(NAME_PATTERN))]
#: An agent id in a query (``?agentId=``), checked likewise.
AgentQuery = Annotated[str | None, Query(alias="agentId", pattern=anchored(NAME_PATTERN))]


class SeedBody(BaseModel):
    """Base of the seed's request bodies: camelCase names (``replyTo``, ``agentId``;
    the snake_case names are accepted too), unknown fields ignored (its clients send
    fields relaybus has no use for, such as ``machine`` and ``rig``), no NaN or
    infinity. The service checks the values, with the messages ``/v1`` gives."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        allow_inf_nan=False,
    )


class SeedSession(SeedBody):
    """The seed's agent session fence, sent with an agent's calls: ``{instanceId,
    epoch}``. relaybus fences by ``epoch`` (a stale one is 409, as in the seed);
    ``instanceId`` is accepted and not compared (a new instance has a new epoch)."""

    instance_id: str | None = None
    epoch: int | None = Field(default=None, ge=0)


class SeedActor(SeedSession):
    """A body naming the agent that acts (``agentId``; ``from`` is read too), with
    its session fence."""

    agent_id: AgentName | None = Field(
        default=None, validation_alias=AliasChoices("agentId", "from")
    )


def json_body(model: type[B]) -> Any:
    """A dependency that reads the request body as JSON into ``model`` whatever the
    Content-Type (an empty body is ``{}``). ``Annotated[Model, json_body(Model)]``.

    Raises:
        RequestValidationError: not JSON, or not what ``model`` accepts (422, each
            error located under ``body``, as FastAPI's own).
    """

    async def parse(request: Request) -> B:
        raw = await request.body()
        try:
            return model.model_validate_json(raw if raw.strip() else b"{}")
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=raw) from None

    return Depends(parse)


def millis(moment: datetime | None) -> int | None:
    """An aware datetime as the seed's timestamps: integer milliseconds since the
    Unix epoch (``Date.now()``); None stays None."""
    return None if moment is None else round(moment.timestamp() * 1000)


def answer(content: Any, status_code: int = 200) -> Response:
    """``content`` (JSON values) as an ``application/json`` response."""
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status_code, media_type="application/json")
