"""Over HTTP with agent tokens: a message an agent neither sent nor received is
answered 404 exactly like an id that does not exist, on every path."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.server.conftest import as_agent, problem, register, unchanged
from tests.support.live import UNUSED_TLS, LiveServer


def shape(body: dict[str, Any], message_id: int) -> dict[str, Any]:
    """A problem with the message id taken out: what is left must not tell a
    hidden message from a missing one."""
    return {
        key: "ID" if value == message_id else str(value).replace(str(message_id), "ID")
        for key, value in body.items()
    }


def test_a_reply_to_a_hidden_message_cannot_read_it_through_the_thread(
    secured: LiveServer, admin: httpx.Client
) -> None:
    # The reproduction of issue 13, point 1.
    tokens = {name: register(admin, name) for name in ("alice", "bob", "carol")}
    with as_agent(admin, tokens["bob"]) as bob:
        sent = bob.post(
            "/v1/messages", json={"to": "carol", "subject": "secret", "body": "launch code 42"}
        )
        assert sent.status_code == 201, sent.text
    hidden = sent.json()["id"]
    missing = hidden + 10**6
    with as_agent(admin, tokens["alice"]) as alice:
        for path in ("", "/thread", "/deliveries", "/deliveries?until=read&wait=0.01"):
            seen = problem(alice.get(f"/v1/messages/{hidden}{path}"), 404)
            absent = problem(alice.get(f"/v1/messages/{missing}{path}"), 404)
            assert seen["detail"] == f"no message {hidden}"
            assert shape(seen, hidden) == shape(absent, missing)
        with unchanged(secured):
            refused = problem(
                alice.post("/v1/messages", json={"reply_to": hidden, "body": "?"}), 404
            )
            nothing = problem(
                alice.post("/v1/messages", json={"reply_to": missing, "body": "?"}), 404
            )
        assert refused["detail"] == f"no message {hidden} to reply to"
        assert shape(refused, hidden) == shape(nothing, missing)
        # A visible reply in the same thread still shows her only her own part of it.
        own = alice.post("/v1/messages", json={"to": "carol", "body": "mine"}).json()
        with as_agent(admin, tokens["carol"]) as carol:
            answer = carol.post(
                "/v1/messages", json={"reply_to": hidden, "to": "alice", "body": "a reply"}
            ).json()
            assert [m["id"] for m in carol.get(f"/v1/messages/{answer['id']}/thread").json()] == [
                hidden,
                answer["id"],
            ]
        thread = alice.get(f"/v1/messages/{answer['id']}/thread")
        assert thread.status_code == 200
        assert [m["id"] for m in thread.json()] == [answer["id"]]
        assert "launch code" not in thread.text and "secret" not in thread.text
        events = alice.get("/v1/events", params={"kind": "message.sent"}).json()
        assert [e["data"]["message_id"] for e in events] == [own["id"], answer["id"]]
    assert admin.get(f"/v1/messages/{hidden}").json()["body"] == "launch code 42"
    assert len(admin.get(f"/v1/messages/{answer['id']}/thread").json()) == 2


def test_an_agent_registered_again_under_an_old_id_does_not_see_its_predecessors_mail(
    secured: LiveServer, admin: httpx.Client
) -> None:
    tokens = {name: register(admin, name) for name in ("alice", "bob")}
    with as_agent(admin, tokens["alice"]) as alice:
        old = alice.post("/v1/messages", json={"to": "bob", "body": "for the old bob"}).json()
    assert admin.delete("/v1/agents/bob").status_code in (200, 204)
    fresh = register(admin, "bob")  # the same id again: it never received that message
    with as_agent(admin, fresh) as bob:
        assert problem(bob.get(f"/v1/messages/{old['id']}"), 404)["detail"] == (
            f"no message {old['id']}"
        )
        events = bob.get("/v1/events", params={"kind": "message.sent"}).json()
        assert events == []
        with (
            httpx.Client(timeout=30, verify=UNUSED_TLS) as client,
            connect_sse(
                client,
                "GET",
                f"{secured.url}/v1/stream",
                params={"since": 0},
                headers={"Authorization": f"Bearer {fresh}"},
            ) as source,
        ):
            kinds = []
            for sse in source.iter_sse():
                if sse.event == "ready":
                    continue
                data = json.loads(sse.data)
                kinds.append(data["kind"])
                if data["kind"] == "agent.registered" and data["agent_id"] == "bob":
                    if kinds.count("agent.registered") == 3:  # alice, bob, bob again
                        break
        assert "message.sent" not in kinds
