"""Workflow runs in the store: create, read, list, compare-and-set updates (also under
racing updaters on separate connections), status moves, events; on both dialects."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from relaybus.errors import Conflict, InvalidInput, NotFound, TooLarge
from relaybus.models import WorkflowRun, WorkflowRunStatus
from relaybus.service import Service
from relaybus.store import Store

if TYPE_CHECKING:
    from tests.conftest import Clock

SOURCE = "version: 1\nname: review\nsteps:\n  plan: {agent: planner, task: Plan}\n"
HUNG = 60.0  # seconds: only a hung test waits this long


def new_run(service: Service, workspace: str = "default", name: str = "review") -> WorkflowRun:
    return service.create_run(
        workspace,
        name=name,
        source=SOURCE,
        file="flows/review.yaml",
        runner="host:1",
        state={"steps": {"plan": {"status": "pending"}}},
    )


def kinds(service: Service) -> list[tuple[str, dict[str, object]]]:
    return [(e.kind, e.data) for e in service.events(kinds=["workflow."])]


def test_a_new_run_is_running_at_version_one_with_its_source_digest(
    service: Service, clock: Clock
) -> None:
    run = new_run(service)

    assert (run.name, run.status, run.version, run.file) == (
        "review",
        WorkflowRunStatus.RUNNING,
        1,
        "flows/review.yaml",
    )
    assert run.digest == hashlib.sha256(SOURCE.encode()).hexdigest()
    assert run.source == SOURCE and run.runner == "host:1"
    assert run.state == {"steps": {"plan": {"status": "pending"}}}
    assert run.heartbeat_at is not None and run.heartbeat_at.timestamp() == clock.now
    assert run.finished_at is None
    assert service.get_run("default", run.id) == run
    assert kinds(service) == [
        (
            "workflow.started",
            {"run_id": run.id, "name": "review", "status": "running", "resumed": False},
        )
    ]


def test_an_update_names_the_version_it_read_and_bumps_it(service: Service, clock: Clock) -> None:
    run = new_run(service)
    clock.advance(5)

    updated = service.update_run(
        "default", run.id, version=1, state={"steps": {"plan": {"status": "done"}}}, heartbeat=True
    )

    assert updated.version == 2 and updated.state == {"steps": {"plan": {"status": "done"}}}
    assert updated.heartbeat_at is not None and updated.heartbeat_at.timestamp() == clock.now
    assert updated.updated_at.timestamp() == clock.now
    with pytest.raises(Conflict, match="at version 2, not 1"):
        service.update_run("default", run.id, version=1, state={})
    assert service.get_run("default", run.id) == updated


def test_finishing_a_run_sets_finished_at_and_appends_workflow_finished(
    service: Service, clock: Clock
) -> None:
    run = new_run(service)
    clock.advance(1)

    done = service.update_run("default", run.id, version=1, status="done")

    assert done.status is WorkflowRunStatus.DONE
    assert done.finished_at is not None and done.finished_at.timestamp() == clock.now
    assert kinds(service)[-1] == (
        "workflow.finished",
        {"run_id": run.id, "name": "review", "status": "done"},
    )
    with pytest.raises(Conflict, match="done: a finished run is not run again"):
        service.update_run("default", run.id, version=2, status="running")
    with pytest.raises(Conflict):
        service.update_run("default", run.id, version=2, status="failed")


@pytest.mark.parametrize("finished", ["failed", "cancelled"])
def test_a_failed_or_cancelled_run_resumes_to_running(service: Service, finished: str) -> None:
    run = new_run(service)
    service.update_run("default", run.id, version=1, status=finished)

    resumed = service.update_run(
        "default", run.id, version=2, status="running", runner="host:2", heartbeat=True
    )

    assert (resumed.status, resumed.runner, resumed.finished_at) == ("running", "host:2", None)
    assert [k for k, _ in kinds(service)] == [
        "workflow.started",
        "workflow.finished",
        "workflow.started",
    ]
    assert kinds(service)[-1][1]["resumed"] is True
    service.update_run("default", run.id, version=3, status=finished)
    other = "cancelled" if finished == "failed" else "failed"
    with pytest.raises(Conflict, match="may only be resumed"):
        service.update_run("default", run.id, version=4, status=other)


def test_a_state_write_on_a_finished_run_keeps_its_status(service: Service) -> None:
    run = new_run(service)
    service.update_run("default", run.id, version=1, status="failed")

    written = service.update_run("default", run.id, version=2, state={"note": "final"})

    assert (written.status, written.state, written.version) == ("failed", {"note": "final"}, 3)
    assert len(kinds(service)) == 2


def test_runs_list_newest_first_by_name_and_status(service: Service) -> None:
    first = new_run(service, name="review")
    second = new_run(service, name="deploy")
    third = new_run(service, name="review")
    service.update_run("default", third.id, version=1, status="done")
    new_run(service, workspace="other")

    assert [r.id for r in service.list_runs("default")] == [third.id, second.id, first.id]
    assert [r.id for r in service.list_runs("default", name="review")] == [third.id, first.id]
    assert [r.id for r in service.list_runs("default", status="running")] == [second.id, first.id]
    assert [r.id for r in service.list_runs("default", name="review", status="done")] == [third.id]
    assert [r.id for r in service.list_runs("default", limit=1)] == [third.id]
    assert len(service.list_runs("other")) == 1


def test_a_run_of_another_workspace_is_not_found(service: Service) -> None:
    run = new_run(service, workspace="other")

    with pytest.raises(NotFound, match=f"no workflow run {run.id}"):
        service.get_run("default", run.id)
    with pytest.raises(NotFound):
        service.update_run("default", run.id, version=1, status="done")
    with pytest.raises(NotFound):
        service.get_run("default", 999)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "Bad Name"}, "invalid workflow name"),
        ({"digest": "abc"}, "SHA-256"),
        ({"file": ""}, "file has 1-4096"),
        ({"runner": "x" * 256}, "runner has 1-255"),
        ({"state": {"a\x00": 1}}, "a key of state"),
        ({"state": {"a": float("nan")}}, "finite"),
        ({"state": [1]}, "JSON object"),
        ({"source": "a\x00b"}, "NUL"),
    ],
)
def test_bad_input_creates_no_run(service: Service, fields: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"name": "review", "source": SOURCE, **fields}
    with pytest.raises(InvalidInput, match=reason):
        service.create_run("default", **args)  # type: ignore[arg-type]
    assert service.list_runs("default") == []
    assert kinds(service) == []


def test_a_state_nested_too_deep_or_too_large_is_refused(service: Service) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="nested more than"):
        service.create_run("default", name="review", source=SOURCE, state=deep)
    with pytest.raises(TooLarge):
        service.create_run("default", name="review", source=SOURCE, state={"a": "x" * (1 << 20)})
    with pytest.raises(TooLarge):
        service.create_run("default", name="review", source="x" * (1 << 20))


def test_bad_updates_change_nothing(service: Service) -> None:
    run = new_run(service)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "nothing to update"),
        ({"status": "paused"}, "unknown workflow run status"),
        ({"version": 0}, "version must be between"),
        ({"runner": ""}, "runner has"),
    ]
    for args, reason in cases:
        with pytest.raises(InvalidInput, match=reason):
            service.update_run("default", run.id, **{"version": 1, **args})
    with pytest.raises(InvalidInput, match="limit"):
        service.list_runs("default", limit=0)
    with pytest.raises(InvalidInput, match="unknown workflow run status"):
        service.list_runs("default", status="paused")
    assert service.get_run("default", run.id) == run


def test_racing_updaters_with_the_same_version_exactly_one_wins(service: Service) -> None:
    # As many stores as threads: each its own writer, like two runners' processes.
    run = new_run(service)
    url = service.store.url.render_as_string(hide_password=False)
    racers = 6
    start = threading.Barrier(racers)

    def update(index: int) -> WorkflowRun | Conflict:
        with Store(url) as own:
            start.wait(HUNG)
            try:
                return Service(own).update_run(
                    "default", run.id, version=1, runner=f"host:{index}", state={"by": index}
                )
            except Conflict as refused:
                return refused

    with ThreadPoolExecutor(racers) as pool:
        answers = list(pool.map(update, range(racers), timeout=HUNG))
    won = [a for a in answers if isinstance(a, WorkflowRun)]
    assert len(won) == 1 and sum(isinstance(a, Conflict) for a in answers) == racers - 1
    stored = service.get_run("default", run.id)
    assert stored.version == 2 and stored.state == {"by": int(str(won[0].runner)[5:])}
    assert stored == won[0]


def test_prune_deletes_runs_finished_before_the_cutoff_and_keeps_running_ones(
    service: Service, clock: Clock
) -> None:
    old_done = new_run(service)
    service.update_run("default", old_done.id, version=1, status="done")
    old_running = new_run(service)
    clock.advance(10 * 86400)
    recent = new_run(service)
    service.update_run("default", recent.id, version=1, status="failed")

    report = service.prune(message_days=5)

    assert report.workflow_runs == 1
    assert {r.id for r in service.list_runs("default")} == {old_running.id, recent.id}
