"""Errors as ``application/problem+json`` (RFC 9457), mapped from exceptions in one place.

Every refusal the server makes has the same shape::

    {"type": "about:blank", "title": "not found", "status": 404,
     "detail": "no agent 'bob' (did you mean 'bobby'?)", "agent": "bob", ...}

``title`` is the error class's title, ``detail`` its human sentence, and the
remaining members are the error's details (:meth:`RelayError.to_dict`), so a
client can rebuild the same :class:`~relaybus.errors.RelayError`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..bounds import MAX_META_DEPTH
from ..errors import REFUSALS, RateLimited, RelayError, StoreError, Unauthorized

logger = logging.getLogger("relaybus.server")

MEDIA_TYPE = "application/problem+json"
#: Titles of the statuses a RelayError also has, so a 413 from the body limit and
#: a TooLarge from the service read alike.
TITLES = {cls.status: cls.title for cls in REFUSALS}
TITLES[422] = "unprocessable content"
TITLES[500] = "internal error"
TITLES[503] = StoreError.title
#: The problem members that the error's details must not overwrite.
RESERVED = frozenset({"type", "title", "status", "detail"})


class Problem(BaseModel):
    """An error response (RFC 9457 problem details) plus the error's own fields."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def title_for(status: int) -> str:
    """The problem title for an HTTP status (``"not found"``)."""
    if status in TITLES:
        return TITLES[status]
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response with ``status`` and a human ``detail``.

    ``extra`` members are added, except those named like a problem member
    (``type``, ``title``, ``status``, ``detail``), which the problem's own win.
    """
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or title_for(status),
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update((k, v) for k, v in extra.items() if k not in RESERVED)
    content = json.dumps(body, default=str, ensure_ascii=False).encode("utf-8")
    return Response(content, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def relay_error_response(err: RelayError) -> Response:
    """The response for a :class:`RelayError`: its status, title, message and details.

    401 carries ``WWW-Authenticate: Bearer``; 429 carries ``Retry-After`` (whole
    seconds, at least 1).
    """
    headers: dict[str, str] = {}
    if isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="relaybus"'
    elif isinstance(err, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    return problem(err.status, err.message, title=err.title, headers=headers, extra=err.to_dict())


async def on_relay_error(_request: Request, exc: Exception) -> Response:
    """Any :class:`RelayError` a route raises: see :func:`relay_error_response`."""
    assert isinstance(exc, RelayError)
    return relay_error_response(exc)


async def on_validation_error(_request: Request, exc: Exception) -> Response:
    """422: the request's body, query, path or headers do not match the schema."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return problem(422, "; ".join(parts) + more, extra={"errors": errors})


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path 404, 405, the body limit's 413) as problems."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else title_for(status)
    if status == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI's JSON parse of a body nested thousands deep.
        detail = (
            "the request's JSON is nested too deeply to read "
            f"(a meta object may be nested at most {MAX_META_DEPTH} levels deep)"
        )
    if status == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.url.path} (the API is described at /openapi.json)"
    headers = dict(exc.headers or {})
    if status == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        if detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
            if allowed:
                detail += f": use {', '.join(allowed)}"
    return problem(status, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves on the request's path, sorted
    (Starlette's own 405 names only the first matching route's methods)."""
    path = request.scope["path"]
    found: set[str] = set()
    # The routes of included routers too (FastAPI keeps them behind one entry each).
    for route in iter_route_contexts(request.app.routes):
        methods = route.methods
        regex = getattr(route, "path_regex", None)
        if methods and regex is not None and regex.match(path):
            found.update(methods)
    return sorted(found)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """The top-level boundary: a bug is logged with its traceback and reported as 500."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, f"internal error: {type(exc).__name__}; the server log has the details")


#: Database errors that mean "unavailable right now", not "a bug": the connection
#: failed or broke, the pool had no free connection in time (``pool_timeout``),
#: or PostgreSQL rolled the transaction back (deadlock, serialisation).
UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


async def on_database_unavailable(request: Request, exc: Exception) -> Response:
    """The database cannot serve the request now: 503 with ``Retry-After``, logged
    once per request without a traceback (the detail names the cause)."""
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = cause[0] if cause else type(exc).__name__
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, reason)
    response = problem(503, f"the database is unavailable: {reason}; retry shortly")
    response.headers["Retry-After"] = "1"
    return response


def install(app: FastAPI) -> None:
    """Register the exception handlers of this module on ``app``."""
    app.add_exception_handler(RelayError, on_relay_error)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, on_database_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)


# -- OpenAPI ---------------------------------------------------------------------

_DESCRIPTIONS = {
    400: "Bad input (the detail says which); nothing changed.",
    401: "No token, or a token the relay does not know.",
    403: "The token may not act as that agent, in that workspace, or do this.",
    404: "No such agent, message or task.",
    409: "A stale epoch, a task held by another agent, or a transition the state forbids.",
    413: "The request body is over the server's limit, or a field over its own.",
    422: "The request does not match the schema.",
    429: "Over the token's rate limit; retry after Retry-After seconds.",
    503: "The store cannot be read or written.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds to wait before retrying.",
        }
    },
}
#: Errors any ``/v1`` endpoint may return.
COMMON = (401, 403, 422, 429, 503)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (plus :data:`COMMON`),
    each a problem+json :class:`Problem`."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *COMMON}):
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        found[status] = entry
    return found


def add_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the :class:`Problem` schema into an OpenAPI document's components."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return openapi


def optional_security(openapi: dict[str, Any]) -> dict[str, Any]:
    """Mark the bearer token optional on every operation (``security: [{...}, {}]``):
    what an open-mode server (no admin token) accepts."""
    for operation in _operations(openapi):
        if operation.get("security") and {} not in operation["security"]:
            operation["security"].append({})
    return openapi


def _operations(openapi: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path in openapi.get("paths", {}).values()
        for operation in path.values()
        if isinstance(operation, dict)
    ]


def drop_null_parameters(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make optional path, query and header parameters non-nullable in the document.

    FastAPI describes ``int | None = None`` as ``anyOf: [integer, null]``, but a
    query string or header cannot carry a JSON null: an optional parameter is
    one that is left out. Also what a client generator should see.
    """
    for operation in _operations(openapi):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            options = schema.get("anyOf")
            if not options:
                continue
            kept = [o for o in options if o.get("type") != "null"]
            if len(kept) == 1 and len(kept) < len(options):
                del schema["anyOf"]
                schema.update(kept[0])
    return openapi
