"""Over HTTP with agent tokens: a message an agent neither sent nor received is
answered 404 exactly like an id that does not exist, on every path."""

from __future__ import annotations

from typing import Any

import httpx

from live import LiveServer

from .conftest import as_agent, problem, register, unchanged


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
