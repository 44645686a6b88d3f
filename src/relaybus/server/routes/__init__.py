"""The HTTP routes, one module per resource, and the few helpers they share.

Routes are thin: parse (FastAPI and the body models), call one service
method, render the model. Sync routes run in the threadpool, where the
blocking store calls belong; they return ready :class:`Response` objects
(JSON bytes straight from pydantic's serializer), while ``response_model``
keeps the OpenAPI document exact.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...errors import InvalidInput
from ...service.idempotency import KEY_PATTERN, MAX_KEY_CHARS, valid_key
from ...wire import ID_BOUNDS, build_all
from ..auth import ApiRequest, quick_call

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Callable[..., Awaitable[Response]])
build_all()  # before any route is declared: the wire models build lazily for clients

#: A JSON escape or a UTF-8 encoding of a lone UTF-16 surrogate (U+D800-U+DFFF).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


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

    For an endpoint ``f(body: Model, call: ApiRequest, epoch: int | None) -> Response``
    (and optionally ``idempotency_key: str | None``, the raw header): a request
    of media type ``application/json``, with well-formed headers and a body that
    ``Model.model_validate_json`` accepts (pydantic's JSON parser also refuses
    unpaired surrogates) goes straight to ``f`` in the threadpool. Anything
    else takes the ordinary FastAPI path, so errors and the OpenAPI document
    are the same either way.

    An endpoint with an event-loop twin (:func:`loop_twin`) is awaited as that twin
    instead, without the worker thread.

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
            twin = _TWINS.get(endpoint)
            if twin is not None:
                return await twin(body, call, epoch, **extra)
            run = partial(copy_context().run, endpoint, body, call, epoch, **extra)
            response: Response = await asyncio.get_running_loop().run_in_executor(_pool(), run)
            return response

        return lean


#: Threads of the hot routes (anyio's threadpool holds 40 too); their own pool, entered
#: with asyncio's executor hop, which costs about a quarter of anyio's ``to_thread``
#: (its capacity limiter and cancel scope) per request.
LEAN_THREADS = 40
_lean_pool: ThreadPoolExecutor | None = None
_lean_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _lean_pool
    if _lean_pool is None:
        with _lean_pool_lock:
            if _lean_pool is None:
                _lean_pool = ThreadPoolExecutor(LEAN_THREADS, thread_name_prefix="relaybus-lean")
    return _lean_pool


#: Lean endpoints' event-loop twins (see :func:`loop_twin`).
_TWINS: dict[Callable[..., Any], Callable[..., Awaitable[Response]]] = {}


def loop_twin(endpoint: Callable[..., Response]) -> Callable[[A], A]:
    """Declare the decorated coroutine function the event-loop twin of the lean
    ``endpoint``: same parameters, same answers and errors, but it waits without a
    worker thread (for an endpoint whose blocking work another thread does, like the
    group commit's :meth:`~relaybus.server.groups.SendGroups.asend`). The lean path
    awaits the twin; the ordinary path still runs ``endpoint``, and
    ``tests/server/test_lean_routes.py`` compares the two."""

    def register(twin: A) -> A:
        _TWINS[endpoint] = twin
        return twin

    return register


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


def wait_query(description: str) -> Any:
    """The ``?wait=SECONDS`` query parameter of a long-poll read (``Annotated[float,
    wait_query(...)]``): a finite number of seconds, at least 0, that
    :func:`long_poll` cuts to ``longpoll_max_seconds``. ``description`` says what
    the read waits for."""
    return Query(ge=0, allow_inf_nan=False, description=description)


async def long_poll(call: ApiRequest, check: Callable[[], T], wait: float) -> T:
    """Run ``check`` until it returns something truthy, for up to ``wait`` seconds
    cut to the server's ``longpoll_max_seconds`` (see :meth:`Hub.wait_for`, which
    counts the wait as a long-poll).

    Returns:
        the truthy result, or the last (falsy) one on timeout.
    """
    return await call.hub.wait_for(check, min(wait, call.config.longpoll_max_seconds))


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
