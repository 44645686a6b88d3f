"""``GET /v1/history``: the broadcasts a late joiner missed, as that agent may read them."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.server.conftest import as_agent, problem


def test_a_late_agent_reads_the_broadcasts_it_missed_and_no_other_agents_view(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice")
    cast("bob")  # a broadcast needs someone besides its sender
    for body, channel in (("hello all", None), ("deploy at 5", "deploys"), ("lunch?", "social")):
        sent = http.post(
            "/v1/messages",
            json={"sender": "alice", "to": "broadcast", "body": body, "channel": channel},
        )
        assert sent.status_code == 201, sent.text
    late = cast("late", channels=["deploys"])

    with as_agent(http, late) as client:
        mine = client.get("/v1/history")
        page = client.get("/v1/history", params={"limit": 1})
        older = client.get("/v1/history", params={"before": page.json()[0]["id"]})
        refused = client.get("/v1/history", params={"channel": "social"})
        other = client.get("/v1/history", params={"agent": "alice"})
        workspace_wide = client.get("/v1/history", params={"broadcast": "true"})
        inbox = client.get("/v1/agents/late/inbox")

    assert [m["body"] for m in mine.json()] == ["deploy at 5", "hello all"]
    assert [m["body"] for m in older.json()] == ["hello all"]
    assert "does not hear channel 'social'" in problem(refused, 403)["detail"]
    problem(other, 403)
    assert [m["body"] for m in workspace_wide.json()] == ["hello all"]
    assert inbox.json() == []  # history never enters the inbox
    everything = http.get("/v1/history").json()
    assert [m["body"] for m in everything] == ["lunch?", "deploy at 5", "hello all"]
    as_late = http.get("/v1/history", params={"agent": "late", "channel": "deploys"}).json()
    assert [m["body"] for m in as_late] == ["deploy at 5"]
    assert http.get("/v1/history", params={"agent": "a b"}).status_code == 422
