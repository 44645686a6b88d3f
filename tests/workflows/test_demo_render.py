"""How the demo words what it sees: event-log entries, agents' reports, the summary."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from relaybus.models import Event, Message
from relaybus.workflows.demo_invariants import Invariant
from relaybus.workflows.demo_render import Printer, describe_event, describe_report

T0 = 1_700_000_000.0


def _event(kind: str, agent: str, **data: Any) -> Event:
    return Event(
        id=1,
        workspace="default",
        kind=kind,
        agent_id=agent,
        data=data,
        created_at=datetime.fromtimestamp(T0 + 0.0123, UTC),
    )


def _no_message(message_id: int) -> Message | None:
    return None


def test_claimable_post_names_the_task_and_everyone_it_reached() -> None:
    event = _event(
        "message.sent",
        "alice",
        message_id=1,
        to="cap:review",
        recipients=["bob", "carol", "dave"],
        subject="Review PR #42: auth refactor",
        task_id=1,
    )

    step = describe_event(event, T0, _no_message)

    assert step is not None
    assert step.text == (
        'alice → cap:review  #1 "Review PR #42: auth refactor"  (task #1 → bob, carol, dave)'
    )
    assert round(step.t_ms, 1) == 12.3


def test_progress_and_closing_read_as_sentences() -> None:
    progress = _event("task.updated", "bob", task_id=1, status="in_progress", progress=30,
                      note="reading the diff")  # fmt: skip
    done = _event("task.updated", "alice", task_id=1, status="done", result="merged")

    texts = [s.text for s in (describe_event(e, T0, _no_message) for e in (progress, done)) if s]

    assert texts == ["bob: task #1 30% reading the diff", "alice marked task #1 done: merged"]


def test_task_created_is_left_to_the_message_line() -> None:
    assert describe_event(_event("task.created", "alice", task_id=1), T0, _no_message) is None


def test_losing_a_claim_names_the_holder() -> None:
    report = {"agent": "carol", "event": "claim_lost", "t": T0 + 1, "task_id": 1, "holder": "bob"}

    step = describe_report(report, T0)

    assert step is not None and step.text == "carol: task #1 already claimed by bob"
    assert step.t_ms == 1000.0


def test_claiming_a_finished_task_says_it_was_done() -> None:
    report = {"agent": "dave", "event": "claim_lost", "t": T0, "task_id": 1, "holder": "bob",
              "status": "done"}  # fmt: skip

    step = describe_report(report, T0)

    assert step is not None and step.text == "dave: task #1 already done, claimed by bob"


def test_reports_the_event_log_already_shows_are_not_repeated() -> None:
    assert describe_report({"agent": "bob", "event": "claim_won", "t": T0}, T0) is None


def test_printer_writes_plain_text_when_not_a_terminal() -> None:
    out = io.StringIO()
    printer = Printer(["alice", "bob"], out=out)
    step = describe_report({"agent": "bob", "event": "error", "t": T0, "message": "boom"}, T0)
    assert step is not None

    printer.step(step)
    printer.summary([Invariant("a", True, "fine"), Invariant("b", False, "broken")], 1.5)

    lines = out.getvalue().splitlines()
    assert lines[0] == "  +     0.0 ms  bob: error: boom"
    assert "  ✓ a  — fine" in lines
    assert "  ✗ b  — broken" in lines
    assert lines[-1] == "✗ demo failed: 1 of 2 invariants broken in 1.50 s"
    assert "\x1b[" not in out.getvalue()
