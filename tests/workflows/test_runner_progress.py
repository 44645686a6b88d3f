"""How a workflow run's progress is shown: JSON lines, plain lines, the live table,
and the state document the runner stores (no relay needed)."""

from __future__ import annotations

import io
import json

from rich.console import Console

from relaybus.workflows.progress import JsonLines, LiveTable, PlainLines, describe, step_row
from relaybus.workflows.runner_state import Attempt, RunState, StepState, tasks_made

EVENTS = [
    {"event": "run.started", "t": 1.0, "run": 3, "name": "review"},
    {"event": "step.offered", "t": 2.0, "run": 3, "step": "plan", "attempt": 1, "task": 7,
     "to": "planner"},
    {"event": "step.claimed", "t": 3.0, "run": 3, "step": "plan", "attempt": 1, "task": 7,
     "agent": "planner"},
    {"event": "step.retry", "t": 4.0, "run": 3, "step": "plan", "attempt": 1, "task": 7,
     "reason": "timed out after 60 s"},
    {"event": "step.done", "t": 5.0, "run": 3, "step": "plan", "attempt": 2, "task": 8,
     "agent": "planner", "result": "the plan\nin two lines"},
    {"event": "run.finished", "t": 6.0, "run": 3, "name": "review", "status": "done"},
]  # fmt: skip


def state() -> RunState:
    found = RunState.fresh(["plan", "build"])
    plan = found.steps["plan"]
    plan.status = "done"
    plan.finished_at = 15.0
    plan.attempts = [
        Attempt(n=1, round=1, to="planner", started=1.0, task=7, status="timeout"),
        Attempt(n=2, round=1, to="planner", started=5.0, task=8, agent="planner"),
    ]
    return found


def test_each_event_reads_as_one_line() -> None:
    lines = [describe(e) for e in EVENTS]

    assert lines == [
        "workflow review: run 3 started",
        "plan: offered to planner (task #7, attempt 1)",
        "plan: claimed by planner (task #7, attempt 1)",
        "plan: retry (task #7, attempt 1): timed out after 60 s",
        "plan: done by planner (task #8, attempt 2): the plan",
        "workflow review: run 3 done",
    ]


def test_json_lines_are_the_events_one_per_line() -> None:
    out = io.StringIO()
    sink = JsonLines(out)
    for event in EVENTS:
        sink(event, state())

    assert [json.loads(line) for line in out.getvalue().splitlines()] == EVENTS


def test_plain_lines_carry_the_time() -> None:
    out = io.StringIO()
    sink = PlainLines(out)
    sink(EVENTS[1], state())

    clock, text = out.getvalue().rstrip("\n").split(" ", 1)
    assert len(clock) == 8 and clock.count(":") == 2
    assert text == "plan: offered to planner (task #7, attempt 1)"


def test_the_live_table_shows_every_step_and_the_latest_events() -> None:
    out = io.StringIO()
    table = LiveTable(Console(file=out, force_terminal=True, width=100))
    for event in EVENTS:
        table(event, state())
    table.close()

    shown = out.getvalue()
    for text in ("plan", "build", "done", "pending", "planner", "run 3 done"):
        assert text in shown


def test_a_step_row_gives_status_agent_attempt_and_elapsed_time() -> None:
    found = state()

    assert step_row("plan", found.steps["plan"], now=100.0) == (
        "plan", "done", "planner", "2", "10.0s",
    )  # fmt: skip
    assert step_row("build", found.steps["build"], now=100.0) == ("build", "pending", "", "", "")


def test_the_state_document_reads_back_as_written() -> None:
    written = state().to_dict()

    again = RunState.from_dict(json.loads(json.dumps(written)), ["plan", "build", "new"])

    assert again.to_dict()["steps"]["plan"] == written["steps"]["plan"]
    assert again.steps["new"] == StepState()
    assert tasks_made(written) == {"plan": 2, "build": 0}
