"""The lean path of the hot routes answers exactly as FastAPI's ordinary path does.

Every route that is a :class:`~relaybus.server.routes.LeanRoute` (sending, one message or
a batch) skips FastAPI's dependency solving when a request is well formed, through
:func:`~relaybus.server.auth.quick_call`. Two servers over identically filled stores (same
test clock, frozen rate-limit clock) get the same requests in the same order: one with the
lean path on, one with ``app.state.lean_routes`` off. Good requests, unauthorized,
forbidden, malformed, stale-epoch, unknown-target, repeated and rate-limited ones must get
the same status, the same headers that matter, and the same body, byte for byte.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from relaybus.bounds import MAX_ID
from relaybus.server import routes
from relaybus.server.auth import quick_call
from relaybus.server.routes import LeanRoute
from relaybus.settings import Settings
from tests.conftest import Clock, server_database
from tests.server.conftest import ADMIN, HUNG, bearer
from tests.support.live import UNUSED_TLS, LiveServer, live_server

#: The response headers the two paths must agree on (the rest: date, server, length).
HEADERS = ("content-type", "retry-after", "www-authenticate", "allow")
#: Requests one token may make before the rate limit refuses it (the clock is frozen:
#: nothing refills).
BURST = 100
#: The service's message body limit on these servers (bytes), small enough to exceed.
BODY_LIMIT = 1000


@dataclass(frozen=True)
class Case:
    """One request: ``who`` names the token (``admin``, an agent id, ``none``, ``bogus``)."""

    name: str
    method: str
    path: str
    who: str = "admin"
    body: Any = None
    #: Raw bytes instead of ``body`` (sent as is, with ``headers``' content type).
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Repeated headers, sent in this order after ``headers``.
    repeated: tuple[tuple[str, str], ...] = ()


def send_cases(path: str, one: Callable[[str], Any]) -> list[Case]:
    """Cases for a LeanRoute at ``path`` whose body for one message text is ``one(text)``
    (``one`` gives a body with ``sender`` alice, without it for the agent's own token)."""
    good = one("hello")
    own = {k: v for k, v in good.items() if k != "sender"}
    key = {"Idempotency-Key": "key-1"}
    return [
        Case("good, admin acting as alice", "POST", path, body=good),
        Case("good, alice's token", "POST", path, "alice", body=own),
        Case(
            "good, charset in the content type",
            "POST",
            path,
            "alice",
            raw=json.dumps(own).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        ),
        Case(
            "good, media type in capitals, a space before the parameter",
            "POST",
            path,
            "alice",
            raw=json.dumps(own).encode(),
            headers={"Content-Type": "Application/JSON ; charset=utf-8"},
        ),
        Case(
            "good, right epoch", "POST", path, "alice", body=own, headers={"X-Relaybus-Epoch": "1"}
        ),
        Case(
            "good, workspace header of the token",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Workspace": "default"},
        ),
        Case("idempotent first", "POST", path, "alice", body=own, headers=key),
        Case("idempotent retry", "POST", path, "alice", body=own, headers=key),
        Case(
            "idempotent key reused for another request",
            "POST",
            path,
            "alice",
            body=one("other"),
            headers=key,
        ),
        Case(
            "idempotency key quoted",
            "POST",
            path,
            "alice",
            body=own,
            headers={"Idempotency-Key": '"key-2"'},
        ),
        Case(
            "idempotency key invalid",
            "POST",
            path,
            "alice",
            body=own,
            headers={"Idempotency-Key": "x" * 300},
        ),
        Case(
            "idempotency key twice",
            "POST",
            path,
            "alice",
            body=own,
            repeated=(("Idempotency-Key", "key-3"), ("Idempotency-Key", "key-4")),
        ),
        Case("stale epoch", "POST", path, "alice", body=own, headers={"X-Relaybus-Epoch": "7"}),
        Case(
            "epoch not a number",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Epoch": "one"},
        ),
        Case("epoch negative", "POST", path, "alice", body=own, headers={"X-Relaybus-Epoch": "-1"}),
        Case(
            "epoch too large",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Epoch": str(MAX_ID + 1)},
        ),
        Case(
            "epoch with a decimal point",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Epoch": "1.0"},
        ),
        Case(
            "epoch with an underscore",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Epoch": "0_1"},
        ),
        Case(
            "epoch with a plus sign",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Epoch": "+1"},
        ),
        Case(
            "epoch twice",
            "POST",
            path,
            "alice",
            body=own,
            repeated=(("X-Relaybus-Epoch", "1"), ("X-Relaybus-Epoch", "7")),
        ),
        Case("no token", "POST", path, "none", body=good),
        Case("unknown token", "POST", path, "bogus", body=good),
        Case(
            "not a bearer token",
            "POST",
            path,
            "none",
            body=good,
            headers={"Authorization": "Basic YWxpY2U6eA=="},
        ),
        Case(
            "bearer without a token",
            "POST",
            path,
            "none",
            body=good,
            headers={"Authorization": "Bearer"},
        ),
        Case("alice's token sending as bob", "POST", path, "alice", body={**good, "sender": "bob"}),
        Case(
            "alice's token in another workspace",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Workspace": "other"},
        ),
        Case(
            "invalid workspace header",
            "POST",
            path,
            "alice",
            body=own,
            headers={"X-Relaybus-Workspace": "no spaces"},
        ),
        Case("admin without a sender", "POST", path, body=own),
        Case("unknown target", "POST", path, "alice", body={**own, **_retarget(own, "nobody")}),
        Case("target malformed", "POST", path, "alice", body={**own, **_retarget(own, "no such!")}),
        Case("unknown field", "POST", path, "alice", body={**own, "colour": "red"}),
        Case(
            "body not JSON",
            "POST",
            path,
            "alice",
            raw=b"{",
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "empty body",
            "POST",
            path,
            "alice",
            raw=b"",
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "JSON array body",
            "POST",
            path,
            "alice",
            raw=b"[]",
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "duplicate keys",
            "POST",
            path,
            "alice",
            raw=_duplicated(own),
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "unpaired surrogate",
            "POST",
            path,
            "alice",
            raw=json.dumps(one("\ud800")).encode(),
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "NaN in meta",
            "POST",
            path,
            "alice",
            raw=_with_meta(own, "NaN"),
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "text/plain content type",
            "POST",
            path,
            "alice",
            raw=json.dumps(own).encode(),
            headers={"Content-Type": "text/plain"},
        ),
        Case(
            "application/jsonx content type",
            "POST",
            path,
            "alice",
            raw=json.dumps(own).encode(),
            headers={"Content-Type": "application/jsonx"},
        ),
        Case(
            "+json content type",
            "POST",
            path,
            "alice",
            raw=json.dumps(own).encode(),
            headers={"Content-Type": "application/merge-patch+json"},
        ),
        Case("no content type", "POST", path, "alice", raw=json.dumps(own).encode()),
        Case(
            "body over the service's limit",
            "POST",
            path,
            "alice",
            body=_strip_sender(one("x" * (BODY_LIMIT + 1))),
        ),
        Case("wrong method", "PUT", path, "alice", body=own),
        Case("GET", "GET", path, "alice"),
    ]


def _strip_sender(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "sender"}


def _retarget(body: dict[str, Any], to: str) -> dict[str, Any]:
    if "messages" in body:
        return {"messages": [{**m, "to": to} for m in body["messages"]]}
    return {"to": to}


def _duplicated(body: dict[str, Any]) -> bytes:
    text = json.dumps(body)
    return b'{"sender": "carol", ' + text[1:].encode()


def _with_meta(body: dict[str, Any], literal: str) -> bytes:
    return json.dumps(body)[:-1].encode() + b', "meta": {"x": ' + literal.encode() + b"}}"


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def one_message(text: str) -> dict[str, Any]:
    return {
        "sender": "alice",
        "to": "tag:backend",
        "body": text,
        "subject": "s",
        "meta": {"k": [1, 2.5]},
    }


def one_batch(text: str) -> dict[str, Any]:
    return {
        "sender": "alice",
        "messages": [
            {"to": "bob", "body": text, "priority": "high"},
            {"to": "tag:backend", "body": text, "claimable": True, "channel": "ops"},
        ],
    }


#: The requests for each LeanRoute (path, method): every one must be listed here.
CASES: dict[tuple[str, str], list[Case]] = {
    ("/v1/messages", "POST"): [
        *send_cases("/v1/messages", one_message),
        Case(
            "reply without a target",
            "POST",
            "/v1/messages",
            "bob",
            body={"reply_to": 1, "body": "ok"},
        ),
        Case(
            "reply to an unknown message",
            "POST",
            "/v1/messages",
            "bob",
            body={"reply_to": 999_999, "body": "ok"},
        ),
        Case(
            "claimable not a boolean",
            "POST",
            "/v1/messages",
            "alice",
            body={"to": "bob", "body": "x", "claimable": "yes"},
        ),
        Case(
            "priority unknown",
            "POST",
            "/v1/messages",
            "alice",
            body={"to": "bob", "body": "x", "priority": "urgent"},
        ),
        Case(
            "meta too deep",
            "POST",
            "/v1/messages",
            "alice",
            body={"to": "bob", "body": "x", "meta": _deep(40)},
        ),
    ],
    ("/v1/messages/batch", "POST"): [
        *send_cases("/v1/messages/batch", one_batch),
        Case("empty batch", "POST", "/v1/messages/batch", "alice", body={"messages": []}),
        Case(
            "batch too long",
            "POST",
            "/v1/messages/batch",
            "alice",
            body={"messages": [{"to": "bob", "body": "x"}] * 501},
        ),
        Case(
            "draft with an unknown field",
            "POST",
            "/v1/messages/batch",
            "alice",
            body={"messages": [{"to": "bob", "body": "x", "sender": "bob"}]},
        ),
    ],
}


@dataclass
class Side:
    """One of the two servers, and the tokens of its agents."""

    server: LiveServer
    client: httpx.Client
    tokens: dict[str, str]

    def ask(self, case: Case) -> httpx.Response:
        headers: list[tuple[str, str]] = []
        if case.who in self.tokens:
            headers.append(("Authorization", f"Bearer {self.tokens[case.who]}"))
        elif case.who == "bogus":
            headers.append(("Authorization", "Bearer not-a-token-of-this-relay"))
        headers += [*case.headers.items(), *case.repeated]
        if case.raw is not None:
            return self.client.request(case.method, case.path, content=case.raw, headers=headers)
        if case.body is None:
            return self.client.request(case.method, case.path, headers=headers)
        return self.client.request(case.method, case.path, json=case.body, headers=headers)


def answer(reply: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """What the two paths must agree on."""
    return (
        reply.status_code,
        {h: reply.headers[h] for h in HEADERS if h in reply.headers},
        reply.content,
    )


@contextlib.contextmanager
def side(folder: Path, dialect: str, clock: Clock, *, lean: bool) -> Iterator[Side]:
    """A secured server on ``dialect`` with agents alice, bob, carol (tags backend,
    channel ops) and hasty, the test clock, and the rate-limit clock frozen."""
    settings = Settings(max_body_bytes=BODY_LIMIT)
    with (
        server_database(dialect) as database,
        live_server(
            folder,
            admin_token=ADMIN,
            database=database,
            settings=settings,
            rate_limit=0.001,
            rate_burst=BURST,
        ) as server,
        httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client,
    ):
        server.service.store.clock = clock
        server.app.state.lean_routes = lean
        limiter = server.app.state.context.auth.limiter
        limiter.clock = lambda: 0.0
        tokens = {"admin": ADMIN}
        for agent, fields in {
            "alice": {},
            "bob": {"tags": ["backend"], "channels": ["ops"]},
            "carol": {"tags": ["backend"], "channels": ["ops"]},
            "hasty": {},
        }.items():
            reply = client.post("/v1/agents", json={"id": agent, **fields}, headers=bearer(ADMIN))
            assert reply.status_code == 201, reply.text
            tokens[agent] = reply.json()["token"]
        yield Side(server, client, tokens)


@pytest.fixture(params=["sqlite", "postgresql"])
def sides(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[tuple[Side, Side]]:
    """The lean server and the ordinary one, over identically filled stores."""
    with (
        side(tmp_path / "lean", request.param, clock, lean=True) as lean,
        side(tmp_path / "plain", request.param, clock, lean=False) as plain,
    ):
        yield lean, plain


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The app of every request that went the lean way (past the body's validation)."""
    apps: list[Any] = []

    def watched(request: Any) -> Any:
        apps.append(request.app)
        return quick_call(request)

    monkeypatch.setattr(routes, "quick_call", watched)
    return apps


def test_every_lean_route_has_its_cases(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        routes_found = list(iter_route_contexts(server.app.routes))
    # The routes of included routers too (FastAPI keeps them behind one entry each).
    found = {
        (route.path, method)
        for route in routes_found
        if isinstance(route.original_route, LeanRoute)
        for method in route.methods or ()
    }
    assert found == set(CASES)


@pytest.mark.parametrize("route", list(CASES), ids=lambda r: f"{r[1]} {r[0]}")
def test_a_lean_route_answers_every_request_as_the_ordinary_path_does(
    route: tuple[str, str], sides: tuple[Side, Side], lean_calls: list[Any], clock: Clock
) -> None:
    lean, plain = sides
    statuses = set()
    for case in CASES[route]:
        clock.advance(0.25)
        expected = answer(plain.ask(case))
        assert answer(lean.ask(case)) == expected, case.name
        statuses.add(expected[0])
    # Not vacuous: the cases reach every kind of answer, and the lean path was taken.
    assert {201, 400, 401, 403, 404, 405, 409, 422} <= statuses
    assert lean_calls and all(app is lean.server.app for app in lean_calls)
    # Rate limited: hasty spends its burst on refused requests (JSON, so that the token
    # is checked: a body that is not JSON is refused before), then sends a good one.
    good = next(c for c in CASES[route] if c.who == "alice" and c.body is not None)
    spend = Case("spend", "POST", route[0], "hasty", body={"colour": "red"})
    for _ in range(BURST):
        assert answer(plain.ask(spend)) == answer(lean.ask(spend))
    limited = Case("rate limited", "POST", route[0], "hasty", body={**good.body, "sender": "hasty"})
    expected = answer(plain.ask(limited))
    assert answer(lean.ask(limited)) == expected
    assert expected[0] == 429 and "retry-after" in expected[1]
