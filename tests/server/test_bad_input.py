"""Bad ids, limits, meta and agent names over HTTP: a 4xx problem+json, nothing stored.

Also what the document promises about them (the bounds and patterns the server
enforces are in /openapi.json) and how methods a path lacks are refused (405
with every method the path has in ``Allow``).

No test here may change a row, so they share one server per dialect with the
:func:`world` set up once (:class:`~tests.support.pristine.Pristine`): each test gets it
only when every row is as the setup left it, and one that changed a row fails and has the
world set up anew for the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybus.bounds import (
    MAX_ID,
    MAX_LIMIT,
    MAX_META_DEPTH,
    NAME_PATTERN,
    TARGET_PATTERN,
    anchored,
)
from tests.conftest import DIALECTS, server_database, snapshot_rows
from tests.server.conftest import HUNG, problem, register, unchanged
from tests.support.live import UNUSED_TLS, LiveServer, live_server
from tests.support.pristine import Pristine

HUGE = 2**63


@contextlib.contextmanager
def shared_server(dialect: str, folder: Path) -> Iterator[LiveServer]:
    """A server in open mode with alice and bob, a message from alice to bob (id 1), and a
    claimable task (id 1)."""
    with (
        server_database(dialect) as database,
        live_server(folder, database=database) as srv,
    ):
        with httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http:
            register(http, "alice", capabilities=["review"])
            register(http, "bob")
            sent = http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "hi"})
            assert sent.is_success, sent.text
            reply = http.post(
                "/v1/messages",
                json={"sender": "bob", "to": "alice", "body": "PR 7", "claimable": True},
            )
            assert reply.json()["task_id"] == 1
        yield srv


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine[LiveServer]]:
    made = iter(range(1, 1_000_000))
    kept = Pristine(
        lambda dialect: shared_server(dialect, tmp_path_factory.mktemp(f"{dialect}-{next(made)}")),
        lambda srv: snapshot_rows(srv.service.store),
    )
    yield kept
    kept.close()


@pytest.fixture(params=DIALECTS)
def server(request: pytest.FixtureRequest, worlds: Pristine[LiveServer]) -> Iterator[LiveServer]:
    """The shared :func:`shared_server` of the test's dialect, which it must leave as it
    found it."""
    with worlds.kept(request.param) as srv:
        yield srv


@pytest.fixture
def world(http: httpx.Client) -> httpx.Client:
    """A client of the shared server, whose world :func:`shared_server` set up."""
    return http


def send(**fields: Any) -> dict[str, Any]:
    return {"sender": "alice", "to": "bob", "body": "hi", **fields}


#: (method, path, JSON body) of requests carrying an id, cursor or limit out of range.
OUT_OF_RANGE = [
    ("GET", f"/v1/messages/{HUGE}", None),
    ("GET", "/v1/messages/0", None),
    ("GET", "/v1/messages/-1", None),
    ("GET", f"/v1/messages/{HUGE}/thread", None),
    ("GET", f"/v1/messages/{HUGE}/deliveries", None),
    ("GET", f"/v1/tasks/{HUGE}", None),
    ("GET", "/v1/tasks/-5/history", None),
    ("POST", f"/v1/tasks/{HUGE}/claim", {"agent_id": "alice"}),
    ("POST", f"/v1/tasks/{MAX_ID + 1}/renew", {"agent_id": "alice"}),
    ("POST", "/v1/tasks/0/release", {"agent_id": "alice"}),
    ("PATCH", f"/v1/tasks/{HUGE}", {"agent_id": "alice", "progress": 5}),
    ("GET", f"/v1/agents/bob/inbox?since={HUGE}", None),
    ("GET", "/v1/agents/bob/inbox?since=-1", None),
    ("GET", f"/v1/agents/bob/inbox?since={HUGE}&wait=30", None),
    ("GET", "/v1/agents/bob/inbox?limit=0", None),
    ("GET", f"/v1/agents/bob/inbox?limit={MAX_LIMIT + 1}", None),
    ("GET", f"/v1/events?since={HUGE}", None),
    ("GET", f"/v1/events?limit={HUGE}", None),
    ("GET", "/v1/tasks?limit=100000", None),
    ("POST", "/v1/messages", send(reply_to=HUGE)),
    ("POST", "/v1/messages", send(reply_to=0)),
    (
        "POST",
        "/v1/messages/batch",
        {"sender": "alice", "messages": [{"to": "bob", "body": "hi", "reply_to": HUGE}]},
    ),
    ("POST", "/v1/agents/bob/inbox/read", {"ids": [HUGE]}),
    ("POST", "/v1/agents/bob/inbox/read", {"up_to": HUGE}),
    ("POST", "/v1/agents/bob/inbox/delivered", {"ids": [-1], "via": "pty"}),
]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(("method", "path", "body"), OUT_OF_RANGE)
def test_an_id_cursor_or_limit_out_of_range_is_a_4xx_problem_and_stores_nothing(
    server: LiveServer, http: httpx.Client, method: str, path: str, body: Any
) -> None:
    with unchanged(server):
        reply = http.request(method, path, json=body)

    assert 400 <= reply.status_code < 500, reply.text
    found = problem(reply, reply.status_code)
    assert "between" in found["detail"] or "greater" in found["detail"], found


@pytest.mark.usefixtures("world")
def test_an_epoch_out_of_range_is_refused_before_anything_is_stored(
    server: LiveServer, http: httpx.Client
) -> None:
    with unchanged(server):
        reply = http.post("/v1/messages", json=send(), headers={"X-Relaybus-Epoch": str(HUGE)})
    assert reply.status_code in (400, 422)
    assert str(MAX_ID) in problem(reply, reply.status_code)["detail"]


def nested_meta(depth: int, kind: str = "object") -> bytes:
    """A meta object nested ``depth`` deep, as raw JSON (no encoder recursion)."""
    opening, closing = (b'{"a":', b"}") if kind == "object" else (b"[", b"]")
    inner = opening * (depth - 1) + b"1" + closing * (depth - 1)
    return b'{"a":' + inner + b"}"


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("depth", "kind"), [(MAX_META_DEPTH + 1, "object"), (5000, "object"), (5000, "list")]
)
def test_meta_nested_too_deep_is_400_naming_the_limit(
    server: LiveServer, http: httpx.Client, depth: int, kind: str
) -> None:
    meta = nested_meta(depth, kind)
    for path, content in (
        ("/v1/messages", b'{"sender":"alice","to":"bob","body":"hi","meta":' + meta + b"}"),
        ("/v1/agents", b'{"id":"dave","meta":' + meta + b"}"),
        ("/v1/agents/bob", b'{"meta":' + meta + b"}"),
    ):
        with unchanged(server):
            method = "PATCH" if path == "/v1/agents/bob" else "POST"
            reply = http.request(
                method, path, content=content, headers={"content-type": "application/json"}
            )
        found = problem(reply, 400)
        assert f"{MAX_META_DEPTH} levels deep" in found["detail"], found


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    "path",
    [
        "/v1/agents/bobb/inbox",
        "/v1/agents/bobb/inbox?unread_only=false",
        # Answers at once: a wait on a typo would otherwise outlast the client's timeout.
        "/v1/agents/bobb/inbox?wait=300",
        "/v1/agents/bobb/inbox/count",
        "/v1/agents/bobb",
    ],
)
def test_an_unknown_agent_is_404_naming_it_with_close_matches(
    server: LiveServer, http: httpx.Client, path: str
) -> None:
    with unchanged(server):
        found = problem(http.get(path), 404)
    assert "no agent 'bobb'" in found["detail"]
    assert "did you mean 'bob'" in found["detail"]
    assert found["agent"] == "bobb"


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/messages/batch", "POST"),
        ("DELETE", "/v1/messages", "GET, POST"),
        ("PUT", "/v1/agents/alice", "DELETE, GET, PATCH"),
        ("POST", "/v1/tasks/1", "GET, PATCH"),
        ("DELETE", "/v1/agents", "GET, POST"),
    ],
)
def test_a_method_the_path_lacks_is_405_with_every_method_it_has(
    server: LiveServer, http: httpx.Client, method: str, path: str, allow: str
) -> None:
    with unchanged(server):
        reply = http.request(method, path, json={})
    found = problem(reply, 405)
    assert reply.headers["allow"] == allow
    assert allow in found["detail"]


def test_the_document_states_the_patterns_and_bounds_the_server_enforces(
    http: httpx.Client,
) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    name, target = anchored(NAME_PATTERN), anchored(TARGET_PATTERN)

    def field(model: str, key: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas[model]["properties"][key]
        options = found.get("anyOf", [found])
        return next(o for o in options if o.get("type") != "null")

    assert field("SendBody", "to")["pattern"] == target
    assert field("SendBody", "sender")["pattern"] == name
    assert field("SendBody", "channel")["pattern"] == name
    assert field("SendBody", "reply_to")["maximum"] == MAX_ID
    assert field("RegisterBody", "id")["pattern"] == name
    for key in ("tags", "capabilities", "channels"):
        assert field("RegisterBody", key)["items"]["pattern"] == name
        assert field("AgentUpdate", key)["items"]["pattern"] == name
    assert field("LeaseBody", "agent_id")["pattern"] == name
    assert field("TaskUpdate", "progress")["maximum"] == 100

    def parameter(path: str, method: str, key: str) -> dict[str, Any]:
        for found in document["paths"][path][method]["parameters"]:
            if found["name"] == key:
                schema: dict[str, Any] = found["schema"]
                return schema
        raise AssertionError(f"{method} {path} has no parameter {key}")

    assert parameter("/v1/messages/{message_id}", "get", "message_id")["maximum"] == MAX_ID
    assert parameter("/v1/messages/{message_id}", "get", "message_id")["minimum"] == 1
    assert parameter("/v1/tasks/{task_id}", "patch", "task_id")["maximum"] == MAX_ID
    assert parameter("/v1/agents/{agent_id}/inbox", "get", "agent_id")["pattern"] == name
    assert parameter("/v1/agents/{agent_id}/inbox", "get", "since")["maximum"] == MAX_ID
    for path in ("/v1/agents/{agent_id}/inbox", "/v1/events", "/v1/tasks"):
        assert parameter(path, "get", "limit")["maximum"] == MAX_LIMIT
