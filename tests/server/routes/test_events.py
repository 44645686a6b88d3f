"""``/v1/events``: the log from a cursor, filtered by kind and by what an agent may see."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import as_agent, problem
from tests.support.live import LiveServer


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in ("alice", "bob", "carol")}


def kinds(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [e["kind"] for e in reply.json()]


def test_admin_reads_every_event_of_the_workspace_from_a_cursor(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    start = http.get("/v1/events/last").json()["id"]
    http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "x"})
    http.post("/v1/agents/bob/inbox/read", json={"up_to": 10**6})

    events = http.get("/v1/events", params={"since": start}).json()

    assert [e["kind"] for e in events] == ["message.sent", "message.read"]
    assert events[0]["data"]["recipients"] == ["bob"]
    assert http.get("/v1/events/last").json() == {"id": events[-1]["id"]}
    assert kinds(http.get("/v1/events", params={"since": start, "kind": "message.read"})) == [
        "message.read"
    ]
    assert kinds(http.get("/v1/events", params={"kind": ["agent.", "message.read"]})) == [
        "agent.registered"
    ] * 3 + ["message.read"]
    assert len(http.get("/v1/events", params={"limit": 2}).json()) == 2


def test_an_agent_token_sees_only_the_events_the_agent_may_see(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    start = http.get("/v1/events/last").json()["id"]
    http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "to bob"})
    http.post("/v1/messages", json={"sender": "bob", "to": "carol", "body": "to carol"})
    http.post("/v1/agents/carol/inbox/read", json={"up_to": 10**6})
    http.post("/v1/prune", json={"message_days": 30})

    with as_agent(http, tokens["alice"]) as alice:
        seen = alice.get("/v1/events", params={"since": start}).json()
    with as_agent(http, tokens["carol"]) as carol:
        seen_by_carol = carol.get("/v1/events", params={"since": start}).json()

    assert [(e["kind"], e["agent_id"]) for e in seen] == [("message.sent", "alice")]
    assert [(e["kind"], e["agent_id"]) for e in seen_by_carol] == [
        ("message.sent", "bob"),
        ("message.read", "carol"),
    ]


def test_an_agent_gets_its_events_even_behind_a_full_page_of_others(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    start = http.get("/v1/events/last").json()["id"]
    for n in range(5):
        http.post("/v1/messages", json={"sender": "bob", "to": "carol", "body": str(n)})
    http.post("/v1/messages", json={"sender": "bob", "to": "alice", "body": "mine"})

    with as_agent(http, tokens["alice"]) as alice:
        page = alice.get("/v1/events", params={"since": start, "limit": 2}).json()

    assert [e["data"]["recipients"] for e in page] == [["alice"]]


def test_waiting_for_events_returns_the_next_one(
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
    start = http.get("/v1/events/last").json()["id"]
    poll = background(lambda: http.get("/v1/events", params={"since": start, "wait": 60}))
    assert parked.wait(30), "the wait did not start"

    http.post("/v1/agents/alice/heartbeat", json={"status": "busy"})

    assert kinds(poll.outcome()) == ["agent.updated"]


def test_bad_event_queries_are_400_with_the_services_reason(http: httpx.Client) -> None:
    assert (
        "limit must be between 1 and 1000"
        in problem(http.get("/v1/events", params={"limit": 0}), 400)["detail"]
    )
    problem(http.get("/v1/events", params={"limit": 1001}), 400)
    problem(http.get("/v1/events", params={"since": -1}), 400)
    problem(http.get("/v1/events", params={"since": "soon"}), 422)
    # A kind with a NUL: no database could compare it (PostgreSQL refuses NUL in text).
    problem(http.get("/v1/events", params={"kind": ["message.sent", "task.\x00"]}), 422)
