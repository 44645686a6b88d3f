"""``GET /v1/messages`` and ``GET /v1/messages/receipts``: the messages the caller may
see, filtered and paged, and a page's receipts at once (both dialects)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import as_agent, problem
from tests.support.live import LiveServer


def send(http: httpx.Client, sender: str, to: str, body: str, **fields: Any) -> int:
    reply = http.post("/v1/messages", json={"sender": sender, "to": to, "body": body, **fields})
    assert reply.status_code == 201, reply.text
    message_id: int = reply.json()["id"]
    return message_id


def bodies(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [m["body"] for m in reply.json()]


@pytest.fixture
def tokens(http: httpx.Client, cast: Callable[..., str]) -> dict[str, str]:
    """alice, bob (tag backend) and carol, with a direct message, a tag-routed one, a
    message on a channel and a reply."""
    found = {
        "alice": cast("alice"),
        "bob": cast("bob", tags=["backend"]),
        "carol": cast("carol", channels=["ops"]),
    }
    root = send(http, "alice", "bob", "Hello Bob", subject="Greeting")
    send(http, "alice", "tag:backend", "build green")
    send(http, "bob", "carol", "ops work", channel="ops")
    send(http, "bob", "alice", "hello alice", reply_to=root)
    return found


def test_an_admin_lists_the_workspace_filtered_and_paged(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    everything = http.get("/v1/messages")
    root = everything.json()[-1]["id"]
    first = http.get("/v1/messages", params={"limit": 3})
    rest = http.get("/v1/messages", params={"before": first.json()[-1]["id"]})

    assert bodies(everything) == ["hello alice", "ops work", "build green", "Hello Bob"]
    assert everything.json()[1]["recipients"] == ["carol"]
    assert bodies(first) + bodies(rest) == bodies(everything)
    assert bodies(http.get("/v1/messages", params={"sender": "bob"})) == [
        "hello alice",
        "ops work",
    ]
    assert bodies(http.get("/v1/messages", params={"recipient": "bob"})) == [
        "build green",
        "Hello Bob",
    ]
    assert bodies(http.get("/v1/messages", params={"participant": "carol"})) == ["ops work"]
    assert bodies(http.get("/v1/messages", params={"channel": "ops"})) == ["ops work"]
    assert bodies(http.get("/v1/messages", params={"thread": root})) == [
        "hello alice",
        "Hello Bob",
    ]
    assert bodies(http.get("/v1/messages", params={"tag": "backend"})) == ["build green"]
    assert bodies(http.get("/v1/messages", params={"to": "tag:backend"})) == ["build green"]
    assert bodies(http.get("/v1/messages", params={"q": "HELLO"})) == [
        "hello alice",
        "Hello Bob",
    ]
    assert bodies(http.get("/v1/messages", params={"q": "greet"})) == ["Hello Bob"]
    as_carol = http.get("/v1/messages", params={"agent": "carol"})
    assert bodies(as_carol) == ["ops work"]


def test_an_agent_token_sees_only_its_own_mail_whatever_it_asks(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    hello = http.get("/v1/messages", params={"q": "Hello Bob"}).json()[0]["id"]

    with as_agent(http, tokens["carol"]) as carol:
        mine = carol.get("/v1/messages")
        searched = carol.get("/v1/messages", params={"q": "hello"})
        by_alice = carol.get("/v1/messages", params={"sender": "alice"})
        to_bob = carol.get("/v1/messages", params={"recipient": "bob"})
        thread = carol.get("/v1/messages", params={"thread": hello})
        as_bob = carol.get("/v1/messages", params={"agent": "bob"})
        as_self = carol.get("/v1/messages", params={"agent": "carol"})
        receipts = carol.get("/v1/messages/receipts", params={"ids": [hello, 10**9]})
        one = carol.get(f"/v1/messages/{hello}")

    assert bodies(mine) == ["ops work"]
    assert bodies(searched) == bodies(by_alice) == bodies(to_bob) == bodies(thread) == []
    problem(as_bob, 403)
    assert bodies(as_self) == ["ops work"]
    # A hidden id is answered like a missing one: no receipt for either.
    assert receipts.status_code == 200 and receipts.json() == []
    problem(one, 404)


def test_receipts_of_a_page_move_as_recipients_read(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    page = http.get("/v1/messages").json()
    ids = [m["id"] for m in page]
    with as_agent(http, tokens["bob"]) as bob:
        read = bob.get("/v1/agents/bob/inbox", params={"mark_read": "true", "via": "inbox"})
        assert read.status_code == 200, read.text

    found = http.get("/v1/messages/receipts", params={"ids": ids})
    with as_agent(http, tokens["alice"]) as alice:
        mine = alice.get("/v1/messages/receipts", params={"ids": ids})

    assert found.status_code == 200, found.text
    states = {(d["message_id"], d["agent_id"]): d["state"] for d in found.json()}
    assert states == {
        (ids[0], "alice"): "queued",
        (ids[1], "carol"): "queued",
        (ids[2], "bob"): "read",
        (ids[3], "bob"): "read",
    }
    read = next(d for d in found.json() if d["message_id"] == ids[3])
    assert read["via"] == "inbox" and read["read_at"] and read["queued_at"]
    # alice sent or received all but bob's message to carol.
    assert {d["message_id"] for d in mine.json()} == {ids[0], ids[2], ids[3]}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"before": 0},
        {"before": "x"},
        {"thread": 0},
        {"sender": "a b"},
        {"recipient": ""},
        {"channel": "#ops"},
        {"to": "nope:x"},
        {"tag": "a b"},
        {"q": "x" * 201},
        {"agent": "a b"},
    ],
)
def test_bad_input_is_a_4xx_with_a_reason(
    http: httpx.Client, server: LiveServer, params: dict[str, Any]
) -> None:
    reply = http.get("/v1/messages", params=params)

    assert reply.status_code in (400, 422), reply.text
    assert reply.json()["detail"]


def test_receipts_refuse_no_ids_too_many_or_bad_ones(http: httpx.Client) -> None:
    for ids in ([], ["x"], [0], list(range(1, 1002))):
        reply = http.get("/v1/messages/receipts", params={"ids": ids})
        assert reply.status_code in (400, 422), (ids, reply.text)
