"""``/v1/messages``: send, batch send, get, thread; and how bad requests are refused."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.server.conftest import as_agent, problem, unchanged
from tests.support.live import LiveServer


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in ("alice", "bob", "carol")}


def test_send_returns_201_with_the_stored_message_and_its_recipients(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    reply = http.post(
        "/v1/messages",
        json={"sender": "alice", "to": "bob", "body": "hi", "subject": "s", "priority": "high"},
    )

    assert reply.status_code == 201
    message = reply.json()
    assert message["sender"] == "alice"
    assert message["recipients"] == ["bob"]
    assert message["priority"] == "high"
    assert message["thread_id"] == message["id"]
    assert server.service.get_message(message["id"]).body == "hi"


def test_an_agent_token_sends_as_its_agent_when_the_sender_is_omitted(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    with as_agent(http, tokens["alice"]) as alice:
        reply = alice.post("/v1/messages", json={"to": "bob", "body": "hi"})

    assert reply.status_code == 201
    assert reply.json()["sender"] == "alice"


def test_admin_must_name_the_sender(server: LiveServer, http: httpx.Client) -> None:
    with unchanged(server):
        body = problem(http.post("/v1/messages", json={"to": "bob", "body": "hi"}), 400)
    assert body["field"] == "sender"


def test_a_claimable_send_creates_a_task(http: httpx.Client, tokens: dict[str, str]) -> None:
    reply = http.post(
        "/v1/messages",
        json={"sender": "alice", "to": "bob", "body": "review PR 7", "claimable": True},
    )

    task_id = reply.json()["task_id"]
    assert http.get(f"/v1/tasks/{task_id}").json()["title"] == "review PR 7"


def test_a_reply_without_a_target_goes_to_the_parent_sender_in_its_thread(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    first = http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "q"}).json()

    reply = http.post(
        "/v1/messages", json={"sender": "bob", "reply_to": first["id"], "body": "a"}
    ).json()

    assert reply["recipients"] == ["alice"]
    thread = http.get(f"/v1/messages/{reply['id']}/thread").json()
    assert [m["body"] for m in thread] == ["q", "a"]


def test_an_unknown_target_is_404_and_a_malformed_one_400_both_changing_nothing(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    with unchanged(server):
        missing = problem(
            http.post("/v1/messages", json={"sender": "alice", "to": "bobby", "body": "x"}), 404
        )
        malformed = problem(
            http.post("/v1/messages", json={"sender": "alice", "to": "tag:", "body": "x"}), 400
        )
    assert "bobby" in missing["detail"]
    assert malformed["error"] == "invalid input"


def test_a_body_that_does_not_match_the_schema_is_422_naming_the_field(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    with unchanged(server):
        wrong_type = problem(
            http.post("/v1/messages", json={"sender": "alice", "to": 7, "body": "x"}), 422
        )
        unknown = problem(
            http.post("/v1/messages", json={"sender": "alice", "to": "bob", "bdy": "x"}), 422
        )
        not_json = problem(
            http.post(
                "/v1/messages", content=b"{nope", headers={"content-type": "application/json"}
            ),
            422,
        )
        bad_priority = problem(
            http.post(
                "/v1/messages",
                json={"sender": "alice", "to": "bob", "body": "x", "priority": "asap"},
            ),
            422,
        )
    assert wrong_type["errors"][0]["loc"] == ["body", "to"]
    assert {tuple(e["loc"]) for e in unknown["errors"]} == {("body", "body"), ("body", "bdy")}
    assert not_json["errors"][0]["type"] == "json_invalid"
    assert "priority" in bad_priority["detail"]


def test_an_unpaired_surrogate_is_refused_with_400(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    raw = b'{"sender": "alice", "to": "bob", "body": "\\ud800"}'
    with unchanged(server):
        body = problem(
            http.post("/v1/messages", content=raw, headers={"content-type": "application/json"}),
            400,
        )
    assert "surrogate" in body["detail"]


def test_a_body_over_the_service_limit_is_413(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    limit = server.service.settings.max_body_bytes
    with unchanged(server):
        body = problem(
            http.post(
                "/v1/messages", json={"sender": "alice", "to": "bob", "body": "x" * (limit + 1)}
            ),
            413,
        )
    assert body["limit"] == limit


def test_a_batch_is_stored_in_order_in_one_go(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    reply = http.post(
        "/v1/messages/batch",
        json={
            "sender": "alice",
            "messages": [{"to": "bob", "body": "1"}, {"to": "carol", "body": "2"}],
        },
    )

    assert reply.status_code == 201
    sent = reply.json()
    assert [m["body"] for m in sent] == ["1", "2"]
    assert [m["recipients"] for m in sent] == [["bob"], ["carol"]]


def test_a_batch_with_one_bad_message_stores_none_of_them(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    batch = {
        "sender": "alice",
        "messages": [{"to": "bob", "body": "1"}, {"to": "zed", "body": "2"}],
    }
    with unchanged(server):
        body = problem(http.post("/v1/messages/batch", json=batch), 404)
        problem(http.post("/v1/messages/batch", json={"sender": "alice", "messages": []}), 422)
    assert "zed" in body["detail"]


def test_get_message_and_thread_for_admin_and_participants_only_others_get_404(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "x"}).json()
    path = f"/v1/messages/{sent['id']}"

    assert http.get(path).json()["recipients"] == ["bob"]
    for name in ("alice", "bob"):
        with as_agent(http, tokens[name]) as participant:
            assert participant.get(path).json()["id"] == sent["id"]
            assert participant.get(f"{path}/thread").status_code == 200
    with as_agent(http, tokens["carol"]) as outsider:
        # Answered exactly as a missing id: no endpoint confirms a hidden one exists.
        assert problem(outsider.get(path), 404)["detail"] == f"no message {sent['id']}"
        assert problem(outsider.get(f"{path}/thread"), 404)["detail"] == f"no message {sent['id']}"
    problem(http.get("/v1/messages/999999"), 404)
    problem(http.get("/v1/messages/0"), 400)
