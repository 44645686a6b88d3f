"""The HTTP routes, one module per resource, and the few helpers they share.

Routes are thin: parse (FastAPI and the body models), call one service
method, render the model. Sync routes run in the threadpool, where the
blocking store calls belong; they return ready :class:`Response` objects
(JSON bytes straight from pydantic's serializer), while ``response_model``
keeps the OpenAPI document exact.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from ...bounds import (
    MAX_ID,
    MAX_LABEL_CHARS,
    MAX_LEASE_SECONDS,
    MAX_LIMIT,
    MAX_META_DEPTH,
    MAX_PID,
    MAX_SUBJECT_CHARS,
    NAME_PATTERN,
    TARGET_PATTERN,
    TEXT_PATTERN,
    anchored,
)
from ...errors import InvalidInput
from ...service.idempotency import KEY_PATTERN, MAX_KEY_CHARS, valid_key
from ..auth import quick_call

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: A JSON escape or a UTF-8 encoding of a lone UTF-16 surrogate (U+D800-U+DFFF).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _not_bool(value: object) -> object:
    # Lax pydantic reads true as 1; JSON Schema says a boolean is not a number.
    if isinstance(value, bool):
        raise ValueError("a number is required, not a boolean")
    return value


#: Body number types: integral floats (1.0) pass, as JSON Schema allows; booleans do
#: not. Bounds go before the validator, so that the JSON schema shows them.
NoBool = BeforeValidator(_not_bool)
Int = Annotated[int, NoBool]
Float = Annotated[float, NoBool]
#: A process id.
Pid = Annotated[int, Field(ge=1, le=MAX_PID), NoBool]
#: A number of days.
Days = Annotated[float, Field(ge=0), NoBool]

# Body fields the service checks (with its own messages, 400), stated in the
# OpenAPI document from the same constants (relaybus.bounds) and not checked
# again here: a body valid by the document is one the service accepts.


def _documented(**schema: Any) -> Any:
    return Field(json_schema_extra=schema)


#: Bounds of ids, cursors and limits as the document states them (the service
#: checks them, with the message the embedded SDK gives too).
ID_BOUNDS: dict[str, Any] = {"minimum": 1, "maximum": MAX_ID}
CURSOR_BOUNDS: dict[str, Any] = {"minimum": 0, "maximum": MAX_ID}
LIMIT_BOUNDS: dict[str, Any] = {"minimum": 1, "maximum": MAX_LIMIT}
#: A message id (``reply_to``, ``ids``).
MessageId = Annotated[int, _documented(**ID_BOUNDS), NoBool]
#: A cursor: "ids above this one" (0 is before everything).
CursorId = Annotated[int, _documented(**CURSOR_BOUNDS), NoBool]
#: An agent id, tag, capability or channel.
Name = Annotated[str, _documented(pattern=anchored(NAME_PATTERN))]
#: A target expression.
Target = Annotated[str, _documented(pattern=anchored(TARGET_PATTERN))]
#: Free text (a body, note, result, cwd…): no NUL character.
Text = Annotated[str, _documented(pattern=anchored(TEXT_PATTERN))]
#: A message subject.
Subject = Annotated[str, _documented(pattern=anchored(TEXT_PATTERN), maxLength=MAX_SUBJECT_CHARS)]
#: An agent label.
Label = Annotated[
    str, _documented(pattern=anchored(TEXT_PATTERN), minLength=1, maxLength=MAX_LABEL_CHARS)
]
#: Lease seconds: above 0, at most a week.
Lease = Annotated[float, _documented(exclusiveMinimum=0, maximum=MAX_LEASE_SECONDS), NoBool]
#: A percentage.
Percent = Annotated[int, _documented(minimum=0, maximum=100), NoBool]
#: The ``meta`` description every body shares.
META = (
    f"A JSON object of at most the server's body limit in bytes, nested at most "
    f"{MAX_META_DEPTH} levels deep, with no NUL character in its text."
)


class Body(BaseModel):
    """Base of request bodies: unknown fields and non-finite numbers are 422."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model config adding example bodies to its JSON schema (for /docs, and for
    the fuzzer's explicit phase)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class RelayRoute(APIRoute):
    """An APIRoute that refuses JSON bodies holding unpaired surrogates (400).

    JSON may spell them (``"\\ud800"``) and Python's parser accepts them, but
    no database can store them; refusing them here keeps every string a route
    passes on encodable.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            body = await request.body()  # cached: FastAPI reads it again for free
            if _SURROGATE.search(body):
                _refuse_surrogates(body)
            return await handler(request)

        return checked


class LeanRoute(RelayRoute):
    """A hot route (sending) that skips FastAPI's dependency solving when it can.

    For an endpoint ``f(body: Model, call: Call, epoch: int | None) -> Response``
    (and optionally ``idempotency_key: str | None``, the raw header): a request
    of media type ``application/json``, with well-formed headers and a body that
    ``Model.model_validate_json`` accepts (pydantic's JSON parser also refuses
    unpaired surrogates) goes straight to ``f`` in the threadpool. Anything
    else takes the ordinary FastAPI path, so errors and the OpenAPI document
    are the same either way.

    ``app.state.lean_routes = False`` (set by ``create_app``, default True) sends
    every request the ordinary way: ``tests/server/test_lean_routes.py`` runs the
    same requests through both paths of every LeanRoute and compares the answers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        ordinary = super().get_route_handler()
        endpoint = self.endpoint
        signature = inspect.signature(endpoint, eval_str=True)
        model: type[BaseModel] = signature.parameters["body"].annotation
        keyed = "idempotency_key" in signature.parameters

        async def lean(request: Request) -> Response:
            # Exactly the media type application/json (FastAPI would not parse
            # application/jsonx as JSON); anything else, +json included, goes the
            # ordinary way.
            media = request.headers.get("content-type", "").partition(";")[0]
            lean_routes = request.app.state.lean_routes
            if media.strip().lower() != "application/json" or not lean_routes:
                return await ordinary(request)
            try:
                body = model.model_validate_json(await request.body())
            except ValidationError:
                return await ordinary(request)
            # Last: it charges the rate limit, which the ordinary path would charge again.
            quick = quick_call(request)
            if quick is None:
                return await ordinary(request)
            call, epoch = quick
            extra = {"idempotency_key": request.headers.get(IDEMPOTENCY_HEADER)} if keyed else {}
            response: Response = await run_in_threadpool(endpoint, body, call, epoch, **extra)
            return response

        return lean


def _refuse_surrogates(body: bytes) -> None:
    try:
        value = json.loads(body)
    except ValueError:
        return  # not JSON: FastAPI's own parse reports it (422)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "the request has a string with an unpaired surrogate (\\ud800-\\udfff): "
            "send valid Unicode"
        ) from None


def make_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are :class:`RelayRoute`."""
    return APIRouter(route_class=RelayRoute, **kwargs)


def lean_post(router: APIRouter, path: str, **kwargs: Any) -> Callable[[F], F]:
    """Like ``@router.post(path, ...)``, for a hot endpoint: the route is a
    :class:`LeanRoute`. (Added to ``router`` itself, not a nested router:
    FastAPI walks included routers level by level.)"""

    def decorate(endpoint: F) -> F:
        router.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=LeanRoute, **kwargs
        )
        return endpoint

    return decorate


def render(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as a JSON response (its ``model_dump(mode="json")`` shape)."""
    content = model.__pydantic_serializer__.to_json(model)
    return Response(content, status_code=status_code, media_type="application/json")


def render_list(
    adapter: TypeAdapter[list[T]], items: Sequence[T], status_code: int = 200
) -> Response:
    """A list of models as a JSON array response."""
    return Response(
        adapter.dump_json(list(items)), status_code=status_code, media_type="application/json"
    )


#: The request header of an idempotency key (draft-ietf-httpapi-idempotency-key-header).
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: ``Idempotency-Key``: the raw header; :func:`key_from_header` reads it. The pattern
#: is documented, not enforced here: the service refuses a bad key with 400.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="Send at most once: the same key from the same sender within 24 h "
        "returns the original answer (same status and body) and stores nothing; the same "
        "key with a different request is 409. 1-255 printable ASCII characters, e.g. a "
        "uuid4 per logical send; a Structured Field string (in double quotes, as in "
        "draft-ietf-httpapi-idempotency-key-header) or bare.",
        json_schema_extra={"pattern": KEY_PATTERN, "maxLength": MAX_KEY_CHARS},
        examples=['"8e03978e-40d5-43e8-bc93-6894a57f9324"'],
    ),
]
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_ESCAPE = re.compile(r'\\(["\\])')


def key_from_header(header: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header: the content of a Structured Field
    string (RFC 8941: ``"..."`` with ``\\"`` and ``\\\\`` escapes), as the IETF draft
    writes it, or the bare value as many clients send it (also when the quoted
    content is no key by itself, so that every value of the documented pattern is
    a key). The service checks it."""
    if header is None:
        return None
    quoted = _SF_STRING.fullmatch(header)
    if quoted is not None:
        key = _SF_ESCAPE.sub(r"\1", quoted.group(1))
        if valid_key(key):
            return key
    return header


class IdConvertor(Convertor[str]):
    """``{name:id}`` in a path: a segment of digits, maybe negative, passed on as
    text to the parameter (an integer; the service checks its bounds: a 400).

    Unlike a plain ``{name}``, a word (``/v1/messages/batch``) does not match, so
    a method the word's own route lacks gets 405 rather than a 422 about the id.
    """

    regex = "-?[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())

#: A message or task id in a path (routes spell it ``{name:id}``: see :class:`IdConvertor`).
IdPath = Annotated[
    int, Path(description="The message or task id.", examples=[1], json_schema_extra=ID_BOUNDS)
]
#: An agent id in a path; ids may contain ``/`` (the routes use the path converter).
AgentPath = Annotated[
    str, Path(pattern=anchored(NAME_PATTERN), description="The agent id.", examples=["bob"])
]
