"""Workflow runs over HTTP, against a real server on each dialect: admin only (an agent's
token gets 403), create (201), read, list (newest first, by name and status), and
compare-and-set updates (409 on a stale version, 404, 400/422 on bad input, which
changes nothing)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.conftest import as_agent, problem, register, unchanged
from tests.support.live import LiveServer

SOURCE = "version: 1\nname: review\nsteps: {}\n"
RUNS = "/v1/workflows/runs"


def create(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    reply = admin.post(RUNS, json={"name": "review", "source": SOURCE, **fields})
    assert reply.status_code == 201, reply.text
    run: dict[str, Any] = reply.json()
    return run


def test_an_admin_records_reads_and_lists_runs(admin: httpx.Client) -> None:
    first = create(admin, file="review.yaml", runner="laptop:1", state={"steps": {}})
    second = create(admin, name="deploy")

    assert (first["status"], first["version"], first["file"]) == ("running", 1, "review.yaml")
    assert len(first["digest"]) == 64 and first["state"] == {"steps": {}}
    assert admin.get(f"{RUNS}/{first['id']}").json() == first
    assert [r["id"] for r in admin.get(RUNS).json()] == [second["id"], first["id"]]
    assert [r["id"] for r in admin.get(RUNS, params={"name": "review"}).json()] == [first["id"]]
    assert admin.get(RUNS, params={"status": "done"}).json() == []
    assert len(admin.get(RUNS, params={"limit": 1}).json()) == 1
    started = admin.get("/v1/events", params={"kind": "workflow."}).json()
    assert [(e["kind"], e["data"]["run_id"]) for e in started] == [
        ("workflow.started", first["id"]),
        ("workflow.started", second["id"]),
    ]


def test_an_update_with_a_stale_version_is_409_and_changes_nothing(
    admin: httpx.Client, secured: LiveServer
) -> None:
    run = create(admin)
    path = f"{RUNS}/{run['id']}"

    reply = admin.patch(path, json={"version": 1, "state": {"plan": "done"}, "heartbeat": True})
    assert reply.status_code == 200, reply.text
    assert reply.json()["version"] == 2 and reply.json()["heartbeat_at"] is not None
    with unchanged(secured):
        assert (
            "at version 2, not 1"
            in problem(admin.patch(path, json={"version": 1, "status": "done"}), 409)["detail"]
        )
        problem(admin.patch(path, json={"version": 2, "status": "paused"}), 422)
        problem(admin.patch(path, json={"version": 2}), 400)  # nothing to update
        problem(admin.patch(path, json={"version": True, "state": {}}), 422)
        problem(admin.patch(path, json={"version": 2, "colour": "red"}), 422)
        problem(admin.patch(f"{RUNS}/999", json={"version": 1, "status": "done"}), 404)
        problem(admin.post(RUNS, json={"name": "Bad Name", "source": SOURCE}), 422)
        problem(admin.post(RUNS, json={"name": "x", "source": SOURCE, "state": {"a\x00": 1}}), 400)

    done = admin.patch(path, json={"version": 2, "status": "done"}).json()
    assert done["status"] == "done" and done["finished_at"] is not None
    assert (
        "finished run"
        in problem(admin.patch(path, json={"version": 3, "status": "running"}), 409)["detail"]
    )


def test_a_failed_run_resumes_over_http(admin: httpx.Client) -> None:
    run = create(admin)
    path = f"{RUNS}/{run['id']}"
    admin.patch(path, json={"version": 1, "status": "failed"}).raise_for_status()

    resumed = admin.patch(path, json={"version": 2, "status": "running", "runner": "other:2"})

    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["finished_at"]) == ("running", None)


def test_an_agent_token_cannot_touch_workflow_runs(
    admin: httpx.Client, secured: LiveServer
) -> None:
    run = create(admin)
    with as_agent(admin, register(admin, "alice")) as alice, unchanged(secured):
        for reply in (
            alice.post(RUNS, json={"name": "review", "source": SOURCE}),
            alice.get(RUNS),
            alice.get(f"{RUNS}/{run['id']}"),
            alice.patch(f"{RUNS}/{run['id']}", json={"version": 1, "status": "done"}),
        ):
            assert "admin token" in problem(reply, 403)["detail"]
