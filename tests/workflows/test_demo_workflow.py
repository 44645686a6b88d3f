"""``relaybus demo`` is a workflow: the file it runs is examples/review.yaml, shipped in
the package, run by the workflow runner; its reviewers race for the review step's task."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.workflows.demo import run_demo
from relaybus.workflows.demo_workflow import WORKFLOW_FILE, cast, demo_workflow, review_step
from relaybus.workflows.load import loads
from relaybus.workflows.runner_store import RunStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "review.yaml"
TIMEOUT = 120.0


def test_the_demos_workflow_is_the_example_file_shipped_in_the_package() -> None:
    # One source: the package's file; examples/review.yaml is a byte-for-byte copy.
    assert WORKFLOW_FILE.parent == Path(sys.modules["relaybus.workflows"].__file__ or "").parent
    assert EXAMPLE.read_bytes() == WORKFLOW_FILE.read_bytes(), (
        "examples/review.yaml differs from src/relaybus/workflows/review.yaml: "
        "edit the package's file and copy it"
    )
    workflow = demo_workflow()
    assert workflow.path == WORKFLOW_FILE
    example = loads(EXAMPLE.read_text(encoding="utf-8"), path=EXAMPLE)
    assert (workflow.agents, workflow.steps) == (example.agents, example.steps)
    assert review_step(workflow) == "review"


def test_the_demo_casts_the_files_author_and_copies_its_reviewer() -> None:
    workflow = demo_workflow()

    agents = cast(workflow, 5)

    assert [(a.name, a.role) for a in agents] == [
        ("alice", "author"), ("bob", "reviewer"), ("carol", "reviewer"),
        ("dave", "reviewer"), ("erin", "reviewer"), ("frank", "reviewer"),
    ]  # fmt: skip
    assert agents[0].tags == ("author",) and agents[0].capabilities == ()
    assert {a.command for a in agents} == {
        (sys.executable, "-m", "relaybus.workflows.demo_agent", "worker")
    }  # python3 of the file: this interpreter, the one that has relaybus
    assert all(a.capabilities == ("review",) for a in agents[1:])
    assert [a.name for a in cast(workflow, 1)] == ["alice", "bob"]


@pytest.mark.slow
def test_one_reviewer_wins_the_review_steps_task_of_the_workflow_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_demo(reviewers=1, json_output=True, timeout=TIMEOUT, keep=True)

    doc = json.loads(capsys.readouterr().out)
    relay_dir = Path(doc["relay_dir"])
    try:
        failed = [inv for inv in doc["invariants"] if not inv["ok"]]
        assert failed == [] and code == 0 and doc["ok"] is True, failed
        assert doc["winner"] == "bob" and doc["reviewers"] == ["bob"]
        assert doc["workflow"] == {
            "file": str(WORKFLOW_FILE), "name": "review", "run_id": 1,
            "status": "done", "error": None,
        }  # fmt: skip
        # The task the invariants were checked on is the run's review step's task.
        with Relay.open(dir=relay_dir) as relay:
            run = RunStore(relay).get(1)
            steps = run.state["steps"]
            assert [s["status"] for s in steps.values()] == ["done"] * 3
            (attempt,) = steps["review"]["attempts"]
            assert attempt["task"] == doc["task_id"]
            task = relay.task(doc["task_id"])
            assert task.target == "cap:review" and task.assignee == "bob"
            assert task.meta["step"] == "review" and task.meta["run"] == 1
            assert task.message_id == doc["observations"]["task_message_id"]
            assert relay.task(steps["merge"]["attempts"][0]["task"]).assignee == "alice"
        kinds = [s["kind"] for s in doc["steps"] if s["source"] == "workflow"]
        assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
        assert kinds.count("step.done") == 3
    finally:
        shutil.rmtree(relay_dir.parent)
