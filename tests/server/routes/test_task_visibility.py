"""Over HTTP with agent tokens: a task made from a message an agent may not see is
answered 404 exactly like a missing task (list, get, history, claim, renew, release,
update), and its ``task.*`` events reach it on no path (event log, SSE, WebSocket)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.sync.client import connect

from relaybus.client import Relay
from relaybus.errors import NotFound
from tests.server.conftest import HUNG, as_agent, bearer, problem, register, unchanged
from tests.support.live import UNUSED_TLS, LiveServer

SENTINEL = "zz-end"


def shape(body: dict[str, Any], task_id: int) -> dict[str, Any]:
    """A problem with the task id taken out: what is left must not tell a hidden
    task from a missing one."""
    return {
        key: "ID" if value == task_id else str(value).replace(str(task_id), "ID")
        for key, value in body.items()
    }


def sse_events(srv: LiveServer, token: str) -> list[dict[str, Any]]:
    """The SSE stream of ``token`` replayed from the start up to the sentinel."""
    found: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client,
        connect_sse(
            client, "GET", f"{srv.url}/v1/stream", params={"since": 0}, headers=bearer(token)
        ) as source,
    ):
        for sse in source.iter_sse():
            if sse.event == "ready":
                continue
            event = json.loads(sse.data)
            if event["kind"] == "agent.registered" and event["agent_id"] == SENTINEL:
                return found
            found.append(event)
    raise AssertionError("the stream ended before the sentinel")


def task_ids(events: list[dict[str, Any]]) -> set[int]:
    return {e["data"]["task_id"] for e in events if e["kind"].startswith("task.")}


def test_an_agent_token_cannot_list_read_claim_or_hear_a_task_it_may_not_see(
    secured: LiveServer, admin: httpx.Client
) -> None:
    tokens = {name: register(admin, name) for name in ("alice", "bob", "carol")}
    alice = as_agent(admin, tokens["alice"])
    bob = as_agent(admin, tokens["bob"])
    carol = as_agent(admin, tokens["carol"])
    with (
        alice,
        bob,
        carol,
        connect(
            f"{secured.ws_url}/v1/ws", additional_headers=bearer(tokens["alice"]), open_timeout=HUNG
        ) as live,
    ):
        assert json.loads(live.recv(timeout=HUNG))["type"] == "ready"
        sent = bob.post(
            "/v1/messages",
            json={"to": "carol", "subject": "secret", "body": "launch code 42", "claimable": True},
        )
        assert sent.status_code == 201, sent.text
        hidden = sent.json()["task_id"]
        missing = hidden + 10**6
        mine = bob.post(
            "/v1/messages", json={"to": "alice", "body": "yours", "claimable": True}
        ).json()["task_id"]

        listed = alice.get("/v1/tasks", params={"limit": 1000})
        assert [t["id"] for t in listed.json()] == [mine]
        assert "secret" not in listed.text and "launch code" not in listed.text
        for path in ("", "/history"):
            seen = problem(alice.get(f"/v1/tasks/{hidden}{path}"), 404)
            absent = problem(alice.get(f"/v1/tasks/{missing}{path}"), 404)
            assert seen["detail"] == f"no task {hidden}"
            assert shape(seen, hidden) == shape(absent, missing)
        problem(alice.get("/v1/tasks", params={"agent": "carol"}), 403)
        with unchanged(secured):
            for method, path, body in (
                ("POST", "/claim", {}),
                ("POST", "/renew", {}),
                ("POST", "/release", {}),
                ("PATCH", "", {"status": "done"}),
            ):
                seen = problem(alice.request(method, f"/v1/tasks/{hidden}{path}", json=body), 404)
                absent = problem(
                    alice.request(method, f"/v1/tasks/{missing}{path}", json=body), 404
                )
                assert seen["detail"] == f"no task {hidden}", path
                assert shape(seen, hidden) == shape(absent, missing)
            # Neither may the sender claim it: only a recipient does.
            problem(bob.post(f"/v1/tasks/{hidden}/claim", json={}), 403)

        assert carol.post(f"/v1/tasks/{hidden}/claim", json={}).json()["assignee"] == "carol"
        assert alice.post(f"/v1/tasks/{mine}/claim", json={}).json()["assignee"] == "alice"
        assert [t["id"] for t in carol.get("/v1/tasks").json()] == [hidden]
        assert [t["id"] for t in admin.get("/v1/tasks").json()] == [mine, hidden]
        assert [t["id"] for t in admin.get("/v1/tasks", params={"agent": "alice"}).json()] == [mine]
        admin.post("/v1/agents", json={"id": SENTINEL}).raise_for_status()

        # The live fan-out over the WebSocket (opened before anything happened).
        pushed: list[dict[str, Any]] = []
        while True:
            event = json.loads(live.recv(timeout=HUNG))["event"]
            if event["kind"] == "agent.registered" and event["agent_id"] == SENTINEL:
                break
            pushed.append(event)
        assert task_ids(pushed) == {mine}
        assert "secret" not in json.dumps(pushed)

        # The event log and the SSE replay.
        log = alice.get("/v1/events", params={"since": 0, "limit": 1000}).json()
        assert task_ids(log) == {mine}
        only_tasks = alice.get("/v1/events", params={"kind": "task.", "limit": 1000}).json()
        assert [e["kind"] for e in only_tasks] == ["task.created", "task.claimed"]
        assert task_ids(sse_events(secured, tokens["alice"])) == {mine}
        assert task_ids(sse_events(secured, tokens["carol"])) == {hidden}
        assert task_ids(sse_events(secured, tokens["bob"])) == {hidden, mine}

    # The remote SDK acting as alice with her token.
    with Relay.open(url=secured.url, token=tokens["alice"]) as relay:
        handle = relay.agent("alice")
        assert [t.id for t in handle.tasks()] == [mine]
        assert [t.id for t in relay.tasks()] == [mine]  # the token decides
        with pytest.raises(NotFound, match=f"^no task {hidden}$"):
            handle.task(hidden)
        with pytest.raises(NotFound, match=f"^no task {hidden}$"):
            handle.claim(hidden)
