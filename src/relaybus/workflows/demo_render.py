"""Turning what the demo sees into readable lines: event-log entries, agents'
reports, and the closing summary. Colour (rich) on a terminal, plain text otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from ..models import Event, Message
from .demo_invariants import Invariant

#: A piece of a line and its style: a rich style, or ``"agent"`` (that agent's colour).
Segment = tuple[str, str]

PALETTE = ("cyan", "green", "yellow", "blue", "red", "bright_cyan", "bright_green")
#: Said by other lines already (the runner's own events say the workflow's).
SKIPPED_EVENTS = frozenset(
    {"task.created", "agent.online", "workflow.started", "workflow.finished"}
)
#: The workflow runner's events that make a line (the event log shows the rest).
WORKFLOW_EVENTS = frozenset(
    {"run.started", "step.offered", "step.done", "step.retry", "step.nudged",
     "step.reoffered", "step.review", "step.failed", "run.finished"}
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One line of the conversation.

    ``t_ms`` is milliseconds since the demo started; ``source`` is ``"event"``
    (the relay's event log), ``"agent"`` (an agent's own report) or ``"demo"``
    (the orchestrator); ``kind`` is the event kind or report name.
    """

    t_ms: float
    source: str
    kind: str
    agent: str | None
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_ms": round(self.t_ms, 3),
            "source": self.source,
            "kind": self.kind,
            "agent": self.agent,
            "text": self.text,
        }


def _quote(text: str, width: int = 60) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return f'"{line[: width - 1]}…"' if len(line) > width else f'"{line}"'


def describe_event(event: Event, t0: float, lookup: Callable[[int], Message | None]) -> Step | None:
    """The line for one event-log entry, or ``None`` for entries other lines
    already say. ``t0`` is the demo's start (Unix seconds); ``lookup`` fetches
    a message by id (for its body) or returns ``None``."""
    if event.kind in SKIPPED_EVENTS:
        return None
    who = event.agent_id or "relay"
    data = event.data
    task = f"task #{data.get('task_id')}"
    parts: list[Segment] = [(who, "agent")]
    if event.kind == "agent.registered":
        caps = ", ".join(f"cap:{c}" for c in data.get("capabilities", []))
        role = ", ".join(x for x in (data.get("label"), caps) if x)
        parts.append((f" registered ({role})" if role else " registered", ""))
    elif event.kind == "message.sent":
        message = lookup(int(data["message_id"]))
        said = data.get("subject") or (message.body if message else "")
        recipients = ", ".join(data.get("recipients", []))
        if data.get("task_id"):
            note = f"(task #{data['task_id']} → {recipients})"
        elif message is not None and message.reply_to is not None:
            note = f"(reply to #{message.reply_to}, thread #{message.thread_id})"
        else:
            note = f"(→ {recipients})"
        parts += [
            (" → ", "dim"),
            (str(data.get("to")), "bold"),
            (f"  #{data['message_id']} ", "dim"),
            (_quote(said), "italic"),
            (f"  {note}", "dim"),
        ]
    elif event.kind == "message.read":
        ids = ", ".join(f"#{i}" for i in data.get("message_ids", []))
        parts.append((f" read {ids}", "dim"))
    elif event.kind == "task.claimed":
        parts.append((f" claimed {task}", "bold green"))
    elif event.kind == "task.updated" and data.get("status") in ("done", "failed", "canceled"):
        result = f": {data['result']}" if data.get("result") else ""
        parts.append((f" marked {task} {data['status']}{result}", "bold"))
    elif event.kind == "task.updated":
        progress = f" {data['progress']}%" if data.get("progress") is not None else ""
        note = f" {data['note']}" if data.get("note") else ""
        parts.append((f": {task}{progress}{note}", ""))
    elif event.kind == "task.released":
        parts.append((f" released {task} ({data.get('reason')})", "yellow"))
    elif event.kind == "agent.offline":
        parts.append((" signed off", "dim"))
    else:
        parts.append((f" {event.kind} {dict(data)}", "dim"))
    t_ms = (event.created_at.timestamp() - t0) * 1000
    return Step(t_ms, "event", event.kind, event.agent_id, tuple(parts))


def describe_report(report: Mapping[str, Any], t0: float) -> Step | None:
    """The line for an agent's own report, or ``None`` for reports the event
    log already shows (only losing a claim and errors leave no event)."""
    agent = str(report.get("agent"))
    event = str(report.get("event"))
    parts: list[Segment] = [(agent, "agent")]
    if event == "claim_lost":
        task = f"task #{report.get('task_id')}"
        status = report.get("status", "claimed")
        if report.get("holder") and status == "claimed":
            parts += [(f": {task} already claimed by ", "yellow"), (report["holder"], "agent")]
        elif report.get("holder"):  # it came too late: the task was finished already
            parts += [(f": {task} already {status}, claimed by ", "yellow")]
            parts.append((report["holder"], "agent"))
        else:
            parts.append((f": lost the claim for {task}: {report.get('reason')}", "yellow"))
    elif event == "error":
        parts.append((f": error: {report.get('message')}", "bold red"))
    else:
        return None
    t_ms = (float(report.get("t", t0)) - t0) * 1000
    return Step(t_ms, "agent", event, agent, tuple(parts))


def describe_workflow(event: Mapping[str, Any], t0: float) -> Step | None:
    """The line for one of the workflow runner's events (see
    :mod:`relaybus.workflows.progress`), or ``None`` for those the event log shows."""
    kind = str(event.get("event"))
    if kind not in WORKFLOW_EVENTS:
        return None
    step = event.get("step")
    run = f"workflow {event.get('name', '')} run #{event.get('run')}"
    style = "bold cyan"
    if kind == "run.started":
        text = f"{run} started"
    elif kind == "run.finished":
        status = event.get("status")
        why = f" ({event['reason']})" if event.get("reason") else ""
        text = f"{run} {status}{why}"
        style = "bold cyan" if status == "done" else "bold red"
    elif kind == "step.offered":
        text, style = f"step {step}: task #{event.get('task')} offered to {event.get('to')}", "cyan"
    elif kind == "step.done":
        text, style = f"step {step} done by {event.get('agent')}", "cyan"
    else:
        why = f": {event['reason']}" if event.get("reason") else ""
        text, style = f"step {step} {kind.removeprefix('step.')}{why}", "yellow"
    t_ms = (float(event.get("t", t0)) - t0) * 1000
    return Step(t_ms, "workflow", kind, None, ((text, style),))


class Printer:
    """Human output: rich colour when ``out`` is a terminal, plain text otherwise."""

    def __init__(self, agents: Sequence[str], out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.console = Console(file=self.out, highlight=False, soft_wrap=True)
        self.colour = {"relay": "white"}
        for index, agent in enumerate(agents):
            self.colour[agent] = "magenta" if index == 0 else PALETTE[(index - 1) % len(PALETTE)]
        self.tty = self.out.isatty()

    def line(self, segments: Sequence[Segment]) -> None:
        if not self.tty:
            print("".join(text for text, _ in segments), file=self.out, flush=True)
            return
        text = Text()
        for chunk, style in segments:
            text.append(
                chunk, style=f"bold {self.colour.get(chunk, '')}" if style == "agent" else style
            )
        self.console.print(text)

    def step(self, step: Step) -> None:
        self.line([(f"  +{step.t_ms:8.1f} ms  ", "dim"), *step.segments])

    def summary(self, invariants: Sequence[Invariant], elapsed: float) -> None:
        self.line([("", "")])
        self.line([("invariants", "bold")])
        for inv in invariants:
            mark = ("  ✓ ", "bold green") if inv.ok else ("  ✗ ", "bold red")
            self.line([mark, (inv.name, ""), (f"  — {inv.detail}", "dim")])
        broken = sum(not inv.ok for inv in invariants)
        if broken:
            verdict = (
                f"✗ demo failed: {broken} of {len(invariants)} invariants broken",
                "bold red",
            )
        else:
            verdict = (f"✓ demo passed: all {len(invariants)} invariants held", "bold green")
        self.line([verdict, (f" in {elapsed:.2f} s", "")])
