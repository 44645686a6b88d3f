"""``Idempotency-Key`` on ``POST /v1/messages`` and ``/v1/messages/batch``, on a real
server over both dialects: a retry gets the first answer (201, same message) and stores
nothing; another request with the key is 409; a malformed key is 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from relaybus.store.schema import messages
from tests.server.conftest import as_agent, problem, unchanged
from tests.support.live import LiveServer

KEY = "0f8e6c1e-5d36-4a43-9b7e-2f1c4d2a9e10"


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in ("alice", "bob", "carol")}


def stored(server: LiveServer) -> int:
    with server.service.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one())


def keyed(key: str | bytes) -> dict[str, Any]:
    return {"Idempotency-Key": key}


def test_a_retried_send_gets_the_first_answer_and_stores_nothing(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    send = {"sender": "alice", "to": "bob", "body": "deploy at 5", "meta": {"pr": 7}}
    first = http.post("/v1/messages", json=send, headers=keyed(KEY))
    assert first.status_code == 201, first.text
    with unchanged(server):
        again = http.post("/v1/messages", json=send, headers=keyed(KEY))
    assert again.status_code == 201
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.json() == first.json()
    assert stored(server) == 1


def test_the_header_works_on_the_ordinary_path_too(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    # The hot path takes only "application/json..."; FastAPI parses this one itself.
    body = json.dumps({"sender": "alice", "to": "bob", "body": "hi"}).encode("utf-8")
    first = http.post("/v1/messages", json=json.loads(body), headers=keyed(KEY))
    again = http.post(
        "/v1/messages", content=body, headers={**keyed(KEY), "Content-Type": "Application/JSON"}
    )
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert stored(server) == 1


def test_a_quoted_structured_field_key_is_the_same_key_as_the_bare_one(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    send = {"sender": "alice", "to": "bob", "body": "hi"}
    bare = http.post("/v1/messages", json=send, headers=keyed(KEY)).json()
    quoted = http.post("/v1/messages", json=send, headers=keyed(f'"{KEY}"')).json()
    assert quoted == bare
    escaped = http.post("/v1/messages", json=send, headers=keyed(r'"a\"b\\c"')).json()
    assert http.post("/v1/messages", json=send, headers=keyed('a"b\\c')).json() == escaped
    assert stored(server) == 2


def test_the_same_key_from_two_agent_tokens_sends_two_messages(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    with as_agent(http, tokens["alice"]) as alice, as_agent(http, tokens["bob"]) as bob:
        by_alice = alice.post(
            "/v1/messages", json={"to": "carol", "body": "hi"}, headers=keyed(KEY)
        )
        by_bob = bob.post("/v1/messages", json={"to": "carol", "body": "hi"}, headers=keyed(KEY))
    assert by_alice.status_code == by_bob.status_code == 201
    assert by_alice.json()["id"] != by_bob.json()["id"]
    assert stored(server) == 2


def test_the_same_key_with_another_message_is_409_and_stores_nothing(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    first = http.post(
        "/v1/messages", json={"sender": "alice", "to": "bob", "body": "one"}, headers=keyed(KEY)
    )
    with unchanged(server):
        reply = http.post(
            "/v1/messages", json={"sender": "alice", "to": "bob", "body": "two"}, headers=keyed(KEY)
        )
    body = problem(reply, 409)
    assert "already used for a different request" in body["detail"]
    assert body["idempotency_key"] == KEY
    assert body["message_ids"] == [first.json()["id"]]


@pytest.mark.parametrize("key", ["x" * 256, "caf\u00e9".encode("latin-1"), b"tab\there", b""])
def test_a_malformed_key_is_400_and_stores_nothing(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], key: str | bytes
) -> None:
    with unchanged(server):
        reply = http.post(
            "/v1/messages", json={"sender": "alice", "to": "bob", "body": "hi"}, headers=keyed(key)
        )
    body = problem(reply, 400)
    assert "invalid idempotency key" in body["detail"]
    assert body["field"] == "idempotency_key"


def test_a_retried_batch_gets_the_first_answer(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    batch = {
        "sender": "alice",
        "messages": [{"to": "bob", "body": "1"}, {"to": "carol", "body": "2"}],
    }
    first = http.post("/v1/messages/batch", json=batch, headers=keyed(KEY))
    assert first.status_code == 201, first.text
    with unchanged(server):
        again = http.post("/v1/messages/batch", json=batch, headers=keyed(KEY))
        other = http.post(
            "/v1/messages/batch",
            json={**batch, "messages": batch["messages"][:1]},
            headers=keyed(KEY),
        )
    assert again.status_code == 201
    assert again.json() == first.json()
    problem(other, 409)
    assert stored(server) == 2


def test_the_openapi_document_describes_the_header(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    for path in ("/v1/messages", "/v1/messages/batch"):
        parameters = document["paths"][path]["post"]["parameters"]
        header = next(p for p in parameters if p["name"] == "Idempotency-Key")
        assert header["in"] == "header"
        assert not header.get("required", False)
        schema = header["schema"]
        variants = schema.get("anyOf", [schema])
        assert any(v.get("pattern") and v.get("maxLength") == 255 for v in variants), schema
