"""The HTTP request of a relay operation: :class:`Request` (method, path, query, JSON
body, who acts, idempotency key, long-poll wait) and the pieces every request builder
uses (:func:`json_body`, :func:`segment`, :func:`acting`), with the client's timeouts.

The builders themselves are in :mod:`.operations` (and, by resource, in
:mod:`.message_requests`, :mod:`.pair_requests`, :mod:`.integration_requests`,
:mod:`.spawn_requests`, :mod:`.workflow_run_requests`); :mod:`.transport` sends a
:class:`Request` with httpx, :mod:`.warm_backend` over the warm relay's socket.

Imports the standard library only (no pydantic, no dataclasses, no httpx): a CLI command
is a whole process, and this module is on its path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import InvalidInput

#: Longest single long-poll (seconds): a longer wait is split into requests of at
#: most this, below the server's ``longpoll_max_seconds`` and common proxy idle limits.
LONGPOLL_CHUNK = 50.0
#: Seconds a long-poll response may take beyond its ``wait`` before it counts as lost.
LONGPOLL_MARGIN = 15.0
#: The request header of an idempotency key (draft-ietf-httpapi-idempotency-key-header).
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Seconds to connect, and to wait for any other response.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Pauses (seconds) before the second and the third attempt of a request that may be
#: sent again after a broken connection (see :meth:`Request.attempts`), before jitter.
RETRY_PAUSES = (0.1, 0.4)

#: One JSON object of a body or an answer.
JSON = dict[str, Any]


class Request:
    """One HTTP request of the relay's API.

    Attributes:
        method, path: the HTTP request line (``path`` already percent-encoded).
        workspace: sent as ``X-Relaybus-Workspace``.
        agent: the agent the request acts as (picks that agent's token, if any).
        epoch: sent as ``X-Relaybus-Epoch`` (fencing).
        params: the query (``None`` values are left out).
        body: the JSON body, a function of no arguments that builds it (only when
            sent), or ``None`` for none; :meth:`json_body` gives it.
        idempotency_key: sent as ``Idempotency-Key``: the server performs the request
            at most once per key, so it may be sent again after a lost answer.
        wait: seconds the server may hold the request (long-poll).
    """

    __slots__ = (
        "method",
        "path",
        "workspace",
        "agent",
        "epoch",
        "params",
        "body",
        "idempotency_key",
        "wait",
    )

    # A plain class, not a NamedTuple (whose class costs a hot command 0.3 ms to make).
    def __init__(
        self,
        method: str,
        path: str,
        workspace: str,
        agent: str | None = None,
        epoch: int | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        wait: float = 0.0,
    ) -> None:
        self.method, self.path, self.workspace = method, path, workspace
        self.agent, self.epoch, self.params = agent, epoch, params
        self.body, self.idempotency_key, self.wait = body, idempotency_key, wait

    def json_body(self) -> Any:
        """The JSON body (built now if :attr:`body` is a function), or ``None``."""
        return self.body() if callable(self.body) else self.body

    def waiting(self, timeout: float, **params: Any) -> Request:
        """This request (a read) as one long-poll: the server holds it up to ``timeout``
        seconds (``?wait=``, after this query and ``params``) and answers as soon as
        there is something. A negative ``timeout`` is 0 (no wait)."""
        timeout = max(timeout, 0.0)
        query = {**(self.params or {}), **params, "wait": round(timeout, 3)}
        return Request(
            self.method,
            self.path,
            self.workspace,
            self.agent,
            self.epoch,
            query,
            self.body,
            self.idempotency_key,
            timeout,
        )

    def attempts(self) -> int:
        """How many times the request is sent when the connection breaks before its
        answer: up to three times for a GET and for a request with an idempotency key
        (the server performs it at most once), else once (a plain POST must not happen
        twice). A timeout is never retried."""
        may_repeat = self.method == "GET" or self.idempotency_key is not None
        return len(RETRY_PAUSES) + 1 if may_repeat else 1

    def encode(self, token: str | None = None) -> tuple[dict[str, str], bytes | None]:
        """``(headers, content)`` of the request: workspace, epoch, ``Authorization``
        (with ``token``), idempotency key and content type, in that order, and the
        body as :func:`encode_json` bytes (``None`` for none).

        Raises:
            InvalidInput: the body is not JSON (see :func:`encode_json`).
        """
        headers = {"X-Relaybus-Workspace": self.workspace}
        if self.epoch is not None:
            headers["X-Relaybus-Epoch"] = str(self.epoch)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = sf_string(self.idempotency_key)
        body = self.json_body()
        if body is None:
            return headers, None
        headers["Content-Type"] = "application/json"
        return headers, encode_json(body)

    def fields(self) -> dict[str, Any]:
        """The request's fields by name (the body as given)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"

    def query(self) -> dict[str, Any] | None:
        """The query as sent: ``None`` values left out, booleans as ``true``/``false``;
        ``None`` when the request has none."""
        if self.params is None:
            return None
        return {k: query_value(v) for k, v in self.params.items() if v is not None}


def sf_string(value: str) -> str:
    """``value`` as a Structured Field string (RFC 8941), the form the IETF draft
    gives ``Idempotency-Key``: in double quotes, ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_value(value: object) -> Any:
    """A query value as sent (``true``/``false`` for booleans, lists item by item)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [query_value(v) for v in value]
    return value


def encode_json(body: Any) -> bytes:
    """A request body as compact UTF-8 JSON (mappings and sequences of any kind).

    Raises:
        InvalidInput: a value JSON cannot hold (NaN, a set, an object) or nested
            too deep to encode; for a bad ``meta``, the embedded mode's message.
    """
    try:
        return json.dumps(
            body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_jsonable
        ).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        _check_metas(body)
        raise InvalidInput(f"the request is not JSON: {exc}") from None


def _check_metas(body: Any) -> None:
    """Raise the service's own error for a bad ``meta`` of ``body`` (or of one of a
    batch's ``messages``), for the embedded mode's exact message. Only on an error
    path, so that a client does not import the service layer otherwise."""
    if not isinstance(body, Mapping):
        return
    from ..service.common import check_meta

    if body.get("meta") is not None:
        check_meta(body["meta"], limit=sys.maxsize)
    items = body.get("messages")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and item.get("meta") is not None:
                try:
                    check_meta(item["meta"], limit=sys.maxsize)
                except InvalidInput as exc:
                    raise InvalidInput(f"message {index}: {exc.message}", index=index) from None


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def segment(value: str | int) -> str:
    """``value`` as one path segment, percent-encoded (an agent id may hold ``/``, ``@``)."""
    return quote(str(value), safe="")


def agent_path(agent_id: str, rest: str = "") -> str:
    return f"/v1/agents/{segment(agent_id)}{rest}"


def acting(
    method: str,
    agent_id: str,
    rest: str,
    workspace: str,
    epoch: int | None,
    *,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Request:
    """``METHOD /v1/agents/{agent_id}{rest}``, acting as that agent."""
    return Request(method, agent_path(agent_id, rest), workspace, agent_id, epoch, params, body)


def json_body(**fields: Any) -> JSON:
    """A body: the fields given, in order, ``None`` left out."""
    return {name: value for name, value in fields.items() if value is not None}


def as_list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)
