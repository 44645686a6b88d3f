"""``/v1/agents``: register (with a token), list, get, update, heartbeat, unregister."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from relaybus.service import hash_token
from tests.server.conftest import as_agent, problem, register, unchanged
from tests.support.live import LiveServer


def test_register_returns_the_agent_and_a_token_stored_only_as_its_digest(
    server: LiveServer, http: httpx.Client
) -> None:
    reply = http.post(
        "/v1/agents",
        json={"id": "alice", "label": "Alice", "tags": ["backend"], "capabilities": ["review"]},
    )

    assert reply.status_code == 201
    body = reply.json()
    assert body["agent"]["id"] == "alice"
    assert body["agent"]["tags"] == ["backend"]
    assert body["agent"]["epoch"] == 1
    token = body["token"]
    assert token.startswith("rb_") and len(token) > 40
    credential = server.service.authenticate(hash_token(token))
    assert credential is not None and credential.agent_id == "alice"
    with server.service.store.read() as conn:
        stored = [row[0] for row in conn.exec_driver_sql("SELECT token_hash FROM tokens")]
    assert stored == [hash_token(token)]


def test_register_without_an_id_derives_one(http: httpx.Client) -> None:
    reply = http.post("/v1/agents", json={"tool": "claude", "host": "box", "cwd": "/src/app"})

    assert reply.status_code == 201
    assert reply.json()["agent"]["id"].startswith("box-claude-app-")


def test_an_agent_token_re_registers_its_own_agent_and_the_old_token_stops_working(
    http: httpx.Client,
) -> None:
    old = register(http, "alice")
    with as_agent(http, old) as alice:
        reply = alice.post("/v1/agents", json={"id": "alice", "label": "again"})
        assert reply.status_code == 201
        new = reply.json()["token"]
        problem(alice.get("/v1/info"), 401)
    with as_agent(http, new) as alice:
        assert alice.get("/v1/info").json()["agent"] == "alice"


def test_an_agent_token_cannot_register_another_agent(
    server: LiveServer, http: httpx.Client
) -> None:
    token = register(http, "alice")
    with as_agent(http, token) as alice, unchanged(server):
        problem(alice.post("/v1/agents", json={"id": "mallory"}), 403)
        problem(alice.post("/v1/agents", json={}), 403)


def test_register_refuses_a_malformed_id_with_the_reason_and_changes_nothing(
    server: LiveServer, http: httpx.Client
) -> None:
    with unchanged(server):
        body = problem(http.post("/v1/agents", json={"id": "bad id!"}), 400)
    assert "agent id" in body["detail"]
    assert body["field"] == "agent id"


def test_list_filters_agents_by_tag_capability_and_status(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice", tags=["backend"])
    cast("bob", capabilities=["review"])
    cast("carol", tags=["backend"])
    http.post("/v1/agents/carol/heartbeat", json={"status": "busy"})

    def ids(**params: str) -> list[str]:
        reply = http.get("/v1/agents", params=params)
        assert reply.status_code == 200
        return [a["id"] for a in reply.json()]

    assert ids() == ["alice", "bob", "carol"]
    assert ids(tag="backend") == ["alice", "carol"]
    assert ids(capability="review") == ["bob"]
    assert ids(status="busy") == ["carol"]
    problem(http.get("/v1/agents", params={"status": "asleep"}), 422)


def test_get_an_unknown_agent_is_404_with_close_matches(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice")

    body = problem(http.get("/v1/agents/alicia"), 404)

    assert "alice" in body["detail"]
    assert body["agent"] == "alicia"


def test_agent_ids_with_a_slash_work_in_paths(http: httpx.Client, cast: Callable[..., str]) -> None:
    cast("team/alice")

    assert http.get("/v1/agents/team/alice").json()["id"] == "team/alice"
    assert http.post("/v1/agents/team/alice/heartbeat").status_code == 200
    assert http.get("/v1/agents/team/alice/inbox").json() == []
    assert http.delete("/v1/agents/team/alice").status_code == 204


def test_patch_changes_only_the_given_fields(http: httpx.Client, cast: Callable[..., str]) -> None:
    cast("alice", label="Alice", tags=["backend"])

    reply = http.patch("/v1/agents/alice", json={"tags": ["frontend"], "status": "idle"})

    assert reply.status_code == 200
    agent = reply.json()
    assert agent["tags"] == ["frontend"]
    assert agent["status"] == "idle"
    assert agent["label"] == "Alice"
    problem(http.patch("/v1/agents/alice", json={"nickname": "al"}), 422)


def test_heartbeat_takes_an_optional_status(http: httpx.Client, cast: Callable[..., str]) -> None:
    cast("alice")

    assert http.post("/v1/agents/alice/heartbeat").json()["status"] == "online"
    assert http.post("/v1/agents/alice/heartbeat", json={"status": "busy"}).json()["status"] == (
        "busy"
    )
    problem(http.post("/v1/agents/nobody/heartbeat"), 404)


def test_a_stale_epoch_header_is_409_and_changes_nothing(
    server: LiveServer, http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice", instance_id="first")
    cast("alice", instance_id="second")  # a new instance: epoch 2 fences off epoch 1

    with unchanged(server):
        body = problem(
            http.post("/v1/agents/alice/heartbeat", headers={"X-Relaybus-Epoch": "1"}), 409
        )
    assert body["current_epoch"] == 2
    reply = http.post("/v1/agents/alice/heartbeat", headers={"X-Relaybus-Epoch": "2"})
    assert reply.status_code == 200


def test_unregister_is_204_and_revokes_the_agent_token(
    server: LiveServer, http: httpx.Client
) -> None:
    token = register(http, "alice")
    with as_agent(http, token) as alice:
        assert alice.get("/v1/info").status_code == 200  # the token is now cached
        reply = alice.delete("/v1/agents/alice")
        assert reply.status_code == 204
        assert reply.content == b""
        problem(alice.get("/v1/info"), 401)
    problem(http.get("/v1/agents/alice"), 404)
    assert server.service.authenticate(hash_token(token)) is None
