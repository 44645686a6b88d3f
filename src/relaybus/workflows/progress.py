"""Showing a workflow run as it goes: what the runner reports, three ways.

The runner calls a :class:`Progress` with each event (a dict: ``event`` its kind,
``t`` Unix seconds, ``run`` the run id, and ``step``, ``attempt``, ``task``,
``agent``, ``reason``... as they apply) and the run's state after it:

- :class:`JsonLines` (``--json``): one JSON object per line, as given;
- :class:`PlainLines` (output not a terminal): one readable line per event;
- :class:`LiveTable` (a terminal): a rich table of the steps (status, agent,
  attempt, elapsed) redrawn in place, with the latest events under it.

Event kinds: ``run.started``, ``run.resumed``, ``agent.spawned``,
``agent.released``, ``step.waiting``, ``step.offered``, ``step.claimed``,
``step.progress``, ``step.verifying``, ``step.done``, ``step.retry``,
``step.nudged``, ``step.reoffered``, ``step.review`` (another round),
``step.failed``, ``run.finished`` (with ``status``).
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

from .runner_state import RunState, StepState, StepStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

#: Events the live table keeps under the steps.
RECENT = 6
#: Redraws of the live table a second.
REFRESH = 4
#: The colour of each step status in the live table.
STYLES = {
    StepStatus.PENDING: "dim",
    StepStatus.WAITING: "yellow",
    StepStatus.OFFERED: "cyan",
    StepStatus.RUNNING: "blue",
    StepStatus.VERIFYING: "magenta",
    StepStatus.DONE: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.CANCELLED: "red",
}


class Progress(Protocol):
    """Where a runner reports: called with each event and the state after it."""

    def __call__(self, event: dict[str, Any], state: RunState) -> None: ...

    def close(self) -> None: ...


class Quiet:
    """Reports nothing (a runner inside a test or a benchmark)."""

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        return None

    def close(self) -> None:
        return None


class JsonLines:
    """One JSON object per event, a line each, flushed (``--json``)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        self.out.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.out.flush()

    def close(self) -> None:
        return None


def describe(event: dict[str, Any]) -> str:
    """One line for an event, without its time: ``plan: offered to planner (task #7,
    attempt 1)``."""
    kind = str(event["event"])
    step = event.get("step")
    task = f"task #{event['task']}" if event.get("task") is not None else None
    attempt = f"attempt {event['attempt']}" if event.get("attempt") is not None else None
    where = ", ".join(p for p in (task, attempt) if p)
    where = f" ({where})" if where else ""
    reason = f": {event['reason']}" if event.get("reason") else ""
    agent = event.get("agent")
    text: str
    if kind == "run.started":
        text = f"workflow {event.get('name')}: run {event.get('run')} started"
    elif kind == "run.resumed":
        text = f"workflow {event.get('name')}: run {event.get('run')} resumed by {agent or '?'}"
    elif kind == "run.finished":
        text = f"workflow {event.get('name')}: run {event.get('run')} {event.get('status')}"
        text += reason
    elif kind == "agent.spawned":
        text = f"agent {agent} spawned (pid {event.get('pid')})"
    elif kind == "agent.released":
        text = f"agent {agent} released"
    elif kind == "step.offered":
        text = f"{step}: offered to {event.get('to')}{where}"
    elif kind == "step.claimed":
        text = f"{step}: claimed by {agent}{where}"
    elif kind == "step.progress":
        note = f" {event['note']}" if event.get("note") else ""
        text = f"{step}: {event.get('progress')}%{note}{where}"
    elif kind == "step.done":
        result = str(event.get("result") or "").strip().splitlines()
        quoted = f": {result[0][:80]}" if result else ""
        text = f"{step}: done by {agent}{where}{quoted}"
    elif kind == "step.review":
        text = f"{step}: not approved; round {event.get('round')} of {event.get('of')}"
    else:
        text = f"{step}: {kind.removeprefix('step.')}{where}{reason}"
        if kind == "step.waiting" and not reason:
            text += f": no agent matches {event.get('to')} yet"
    return text


class PlainLines:
    """A line per event with its time (output that is not a terminal)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        clock = datetime.fromtimestamp(float(event["t"])).strftime("%H:%M:%S")
        self.out.write(f"{clock} {describe(event)}\n")
        self.out.flush()

    def close(self) -> None:
        return None


def step_row(name: str, step: StepState, now: float) -> tuple[str, str, str, str, str]:
    """A step's row: name, status, agent, attempt, elapsed (``12.3s``)."""
    attempt = step.current
    agent = (attempt.agent or attempt.to) if attempt is not None else ""
    count = str(attempt.n) if attempt is not None else ""
    if step.round > 1:
        count += f" (round {step.round})"
    elapsed = ""
    if attempt is not None:
        end = step.finished_at if step.status in StepStatus.FINAL else None
        elapsed = f"{max((end or now) - attempt.started, 0.0):.1f}s"
    return name, step.status, agent, count, elapsed


def steps_table(state: RunState, now: float | None = None) -> Table:
    """The steps as a rich table (the live view, and ``workflow status``)."""
    from rich.table import Table

    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False)
    for column in ("step", "status", "agent", "attempt", "elapsed"):
        table.add_column(column, no_wrap=True)
    for name, step in state.steps.items():
        row = step_row(name, step, now)
        style = STYLES.get(step.status, "")
        table.add_row(row[0], f"[{style}]{row[1]}[/]", *row[2:])
    return table


class LiveTable:
    """The steps' table redrawn in place on a terminal, the latest events below."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.recent: deque[str] = deque(maxlen=RECENT)
        self.state: RunState | None = None
        self.live: Live | None = None

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = []
        if self.state is not None:
            parts.append(steps_table(self.state))
        parts.extend(Text(line, style="dim") for line in tuple(self.recent))  # a snapshot
        return Group(*parts)

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        from rich.live import Live

        self.state = state
        clock = datetime.fromtimestamp(float(event["t"])).strftime("%H:%M:%S")
        self.recent.append(f"{clock} {describe(event)}")
        if self.live is None:
            self.live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=REFRESH
            )
            self.live.start()
        # No redraw here: Live's own thread redraws REFRESH times a second (a redraw of
        # every step per event cost the runner more than the step itself), and
        # :meth:`close` draws the last state.

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
