"""``/v1/tasks``: list, get, history, claim, renew, release and update."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.server.conftest import as_agent, problem, unchanged
from tests.support.live import LiveServer


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name, capabilities=["review"]) for name in ("alice", "bob", "carol")}


@pytest.fixture
def task_id(http: httpx.Client, tokens: dict[str, str]) -> int:
    reply = http.post(
        "/v1/messages",
        json={"sender": "alice", "to": "cap:review", "body": "review PR 7", "claimable": True},
    )
    assert reply.status_code == 201, reply.text
    found: int = reply.json()["task_id"]
    return found


def test_tasks_are_listed_newest_first_and_filtered(
    http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    other = http.post(
        "/v1/messages", json={"sender": "alice", "to": "bob", "body": "b", "claimable": True}
    ).json()["task_id"]
    http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})

    assert [t["id"] for t in http.get("/v1/tasks").json()] == [other, task_id]
    assert [t["id"] for t in http.get("/v1/tasks", params={"status": "claimed"}).json()] == [
        task_id
    ]
    assert [t["id"] for t in http.get("/v1/tasks", params={"assignee": "bob"}).json()] == [task_id]
    assert len(http.get("/v1/tasks", params={"limit": 1}).json()) == 1
    problem(http.get("/v1/tasks", params={"status": "sleeping"}), 422)


def test_the_claim_lifecycle_claim_renew_progress_done(
    http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    with as_agent(http, tokens["bob"]) as bob:
        claimed = bob.post(f"/v1/tasks/{task_id}/claim", json={"lease": 60})
        renewed = bob.post(f"/v1/tasks/{task_id}/renew", json={"lease": 120})
        progress = bob.patch(f"/v1/tasks/{task_id}", json={"progress": 40, "note": "halfway"})
        done = bob.patch(f"/v1/tasks/{task_id}", json={"status": "done", "result": "merged"})

    assert claimed.json()["status"] == "claimed"
    assert claimed.json()["assignee"] == "bob"
    assert renewed.json()["lease_expires_at"] > claimed.json()["lease_expires_at"]
    assert progress.json()["status"] == "in_progress"
    assert done.json()["status"] == "done"
    assert done.json()["result"] == "merged"
    kinds = [e["kind"] for e in http.get(f"/v1/tasks/{task_id}/history").json()]
    assert kinds == ["created", "claimed", "in_progress", "done"]


def test_a_task_held_by_another_agent_cannot_be_claimed(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})

    with unchanged(server):
        body = problem(http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "carol"}), 409)
    assert body["holder"] == "bob"


def test_release_reopens_the_task(http: httpx.Client, tokens: dict[str, str], task_id: int) -> None:
    http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})

    released = http.post(f"/v1/tasks/{task_id}/release", json={"agent_id": "bob"})

    assert released.json()["status"] == "open"
    assert released.json()["assignee"] is None
    problem(http.post(f"/v1/tasks/{task_id}/release", json={"agent_id": "bob"}), 409)


def test_admin_without_an_agent_releases_a_stuck_lease_as_the_operator(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})
    with as_agent(http, tokens["carol"]) as carol, unchanged(server):
        problem(carol.post(f"/v1/tasks/{task_id}/release", json={}), 409)  # carol's own

    released = http.post(f"/v1/tasks/{task_id}/release", json={})

    assert released.status_code == 200, released.text
    assert (released.json()["status"], released.json()["assignee"]) == ("open", None)
    last = http.get(f"/v1/tasks/{task_id}/history").json()[-1]
    assert (last["agent_id"], last["note"]) == ("bob", "released by operator")
    with unchanged(server):
        problem(http.post(f"/v1/tasks/{task_id}/release", json={}), 409)


def test_tasks_page_before_an_id(http: httpx.Client, tokens: dict[str, str], task_id: int) -> None:
    later = http.post(
        "/v1/messages", json={"sender": "alice", "to": "bob", "body": "b", "claimable": True}
    ).json()["task_id"]

    page = http.get("/v1/tasks", params={"before": later, "limit": 10})

    assert [t["id"] for t in page.json()] == [task_id]
    problem(http.get("/v1/tasks", params={"before": 0}), 400)


def test_an_agent_that_neither_holds_nor_created_the_task_cannot_update_it(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})

    with as_agent(http, tokens["carol"]) as carol, unchanged(server):
        problem(carol.patch(f"/v1/tasks/{task_id}", json={"status": "done"}), 403)


def test_admin_without_an_agent_updates_a_task_as_the_operator(
    http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    reply = http.patch(f"/v1/tasks/{task_id}", json={"status": "canceled", "note": "obsolete"})

    assert reply.status_code == 200
    assert reply.json()["status"] == "canceled"
    history = http.get(f"/v1/tasks/{task_id}/history").json()
    assert history[-1]["agent_id"] is None


def test_bad_task_requests_are_refused(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    with unchanged(server):
        problem(http.get("/v1/tasks/999999"), 404)
        problem(http.get("/v1/tasks/999999/history"), 404)
        problem(http.post("/v1/tasks/999999/claim", json={"agent_id": "bob"}), 404)
        problem(http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob", "lease": 0}), 400)
        problem(
            http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob", "lease": "x"}), 422
        )
        problem(http.patch(f"/v1/tasks/{task_id}", json={}), 400)
        problem(http.patch(f"/v1/tasks/{task_id}", json={"progress": 101}), 400)
        problem(http.patch(f"/v1/tasks/{task_id}", json={"progress": True}), 422)
        problem(http.post(f"/v1/tasks/{task_id}/claim", json={}), 400)  # admin names no agent


def test_an_agent_renews_every_lease_it_holds_and_only_its_own(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    with as_agent(http, tokens["bob"]) as bob:
        assert bob.post("/v1/agents/bob/leases/renew").json() == {"renewed": [], "next_in": None}
        bob.post(f"/v1/tasks/{task_id}/claim", json={"lease": 30})
        renewal = bob.post("/v1/agents/bob/leases/renew")
        with unchanged(server):
            problem(bob.post("/v1/agents/carol/leases/renew"), 403)
            stale = bob.post("/v1/agents/bob/leases/renew", headers={"X-Relaybus-Epoch": "99"})
            problem(stale, 409)

    assert renewal.status_code == 200, renewal.text
    assert renewal.json() == {"renewed": [task_id], "next_in": pytest.approx(10.0)}
    problem(http.post("/v1/agents/nobody/leases/renew"), 404)
