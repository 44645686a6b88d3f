"""``/v1/agents/{id}/inbox``: read, peek, mark read, count, and the ``?wait=`` long-poll."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import as_agent, problem
from tests.support.live import UNUSED_TLS, LiveServer


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in ("alice", "bob")}


def send(http: httpx.Client, body: str, sender: str = "alice", to: str = "bob") -> int:
    reply = http.post("/v1/messages", json={"sender": sender, "to": to, "body": body})
    assert reply.status_code == 201, reply.text
    message_id: int = reply.json()["id"]
    return message_id


def bodies(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [m["body"] for m in reply.json()]


def test_inbox_lists_unread_newest_first_and_peeking_leaves_them_unread(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    for body in ("1", "2", "3"):
        send(http, body)

    assert bodies(http.get("/v1/agents/bob/inbox")) == ["3", "2", "1"]
    assert bodies(http.get("/v1/agents/bob/inbox", params={"newest_first": "false"})) == [
        "1",
        "2",
        "3",
    ]
    assert bodies(http.get("/v1/agents/bob/inbox", params={"limit": 1})) == ["3"]
    assert http.get("/v1/agents/bob/inbox/count").json() == {"unread": 3, "limit": 1000}


def test_reading_with_mark_read_marks_what_it_returns(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    first = send(http, "1")
    send(http, "2")

    read = http.get("/v1/agents/bob/inbox", params={"mark_read": "true", "since": first})

    assert bodies(read) == ["2"]
    assert read.json()[0]["read_at"] is not None  # as this call left it
    assert read.json()[0]["recipients"] == ["bob"]
    assert bodies(http.get("/v1/agents/bob/inbox")) == ["1"]
    everything = http.get("/v1/agents/bob/inbox", params={"unread_only": "false"}).json()
    assert [m["read_at"] is not None for m in everything] == [True, False]


def test_mark_read_by_ids_or_up_to_a_cursor(http: httpx.Client, tokens: dict[str, str]) -> None:
    ids = [send(http, str(n)) for n in range(4)]

    by_ids = http.post("/v1/agents/bob/inbox/read", json={"ids": [ids[0]]})
    up_to = http.post("/v1/agents/bob/inbox/read", json={"up_to": ids[2]})

    assert by_ids.json() == {"marked": 1}
    assert up_to.json() == {"marked": 2}
    assert http.get("/v1/agents/bob/inbox/count").json() == {"unread": 1, "limit": 1000}
    problem(http.post("/v1/agents/bob/inbox/read", json={}), 400)
    problem(http.post("/v1/agents/bob/inbox/read", json={"ids": [ids[0]], "up_to": 1}), 400)


def test_only_the_agent_reads_its_inbox(http: httpx.Client, tokens: dict[str, str]) -> None:
    send(http, "secret")

    with as_agent(http, tokens["bob"]) as bob:
        assert bodies(bob.get("/v1/agents/bob/inbox")) == ["secret"]
    with as_agent(http, tokens["alice"]) as alice:
        problem(alice.get("/v1/agents/bob/inbox"), 403)
        problem(alice.get("/v1/agents/bob/inbox/count"), 403)
        problem(alice.post("/v1/agents/bob/inbox/read", json={"up_to": 1}), 403)


def test_a_long_poll_returns_the_message_that_arrives_while_it_waits(
    server: LiveServer,
    http: httpx.Client,
    tokens: dict[str, str],
    background: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = server.app.state.hub
    parked = threading.Event()
    real_wait_for = hub.wait_for

    async def wait_for(check: Callable[[], Any], timeout: float, **kwargs: Any) -> Any:
        parked.set()
        return await real_wait_for(check, timeout, **kwargs)

    monkeypatch.setattr(hub, "wait_for", wait_for)
    poll = background(
        lambda: http.get("/v1/agents/bob/inbox", params={"wait": 60, "mark_read": "true"})
    )
    assert parked.wait(30), "the long-poll did not start waiting"

    send(http, "wake up")

    assert bodies(poll.outcome()) == ["wake up"]
    assert http.get("/v1/agents/bob/inbox/count").json() == {"unread": 0, "limit": 1000}


def test_a_long_poll_with_mail_waiting_answers_at_once_oldest_first(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    send(http, "1")
    send(http, "2")

    assert bodies(http.get("/v1/agents/bob/inbox", params={"wait": 60})) == ["1", "2"]


def test_a_long_poll_that_times_out_returns_an_empty_list(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    assert bodies(http.get("/v1/agents/bob/inbox", params={"wait": 0.05})) == []
    problem(http.get("/v1/agents/bob/inbox", params={"wait": -1}), 422)
    problem(http.get("/v1/agents/bob/inbox", params={"wait": "nan"}), 422)


def test_a_long_poll_longer_than_the_server_maximum_is_cut_short(
    tmp_path: Any, database: str | None
) -> None:
    from tests.support.live import live_server

    with live_server(tmp_path, database=database, longpoll_max_seconds=0.05) as srv:
        srv.service.register("bob")
        reply = httpx.get(
            f"{srv.url}/v1/agents/bob/inbox", params={"wait": 3600}, timeout=30, verify=UNUSED_TLS
        )

    assert reply.status_code == 200
    assert reply.json() == []
