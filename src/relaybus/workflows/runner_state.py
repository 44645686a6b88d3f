"""The runner's own document: what each step of a workflow run has done so far.

It is the ``state`` of a :class:`~relaybus.models.WorkflowRun`, written to the store
after every batch of changes (:class:`~relaybus.workflows.runner_store.RunStore`), so
that a runner that was killed can be taken over by ``relaybus workflow resume``
without repeating a finished step: the document says which steps are done (with their
results), and which task each open attempt is; a task made after the last write is
found again by its meta and dedupe key.

Shape (JSON; fields without a value are left out)::

    {"format": 1,
     "spawned": ["reviewer"],                # agents this run spawned (released at the end)
     "steps": {"plan": {"status": "done", "round": 1, "failures": 0,
                        "result": "...", "tried": [],
                        "ready_at": 1718000000.0, "finished_at": 1718000004.2,
                        "attempts": [{"n": 1, "round": 1, "to": "planner",
                                      "task": 7, "agent": "planner", "status": "done",
                                      "started": 1718000000.1, "ended": 1718000004.2,
                                      "activity": 1718000004.2, "progress": 100}]}}}

Times are Unix seconds. An attempt is one task: ``n`` counts every task the step
ever had (retries, review rounds, re-offers), so ``workflow:RUN:STEP:N`` names each
attempt's task once (its dedupe key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The document's format (``format``), for a later runner reading an older one.
FORMAT = 1


class StepStatus:
    """A step's status in the document (plain strings: the document is JSON)."""

    PENDING = "pending"  # waiting for its depends_on
    WAITING = "waiting"  # ready, but no agent matches its target yet
    OFFERED = "offered"  # its task is open: offered, not claimed
    RUNNING = "running"  # an agent claimed its task
    VERIFYING = "verifying"  # its task is done; its result is being checked
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    #: Steps with an attempt in play (a task that may still change).
    ACTIVE = frozenset({OFFERED, RUNNING, VERIFYING})
    #: Steps that will change no more in this run.
    FINAL = frozenset({DONE, FAILED, CANCELLED})


class AttemptStatus:
    """An attempt's status: its task's, plus ``offering`` (the task is being made:
    a runner killed here finds it again by its dedupe key) and ``timeout``."""

    OFFERING = "offering"
    OPEN = "open"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"

    #: Attempts whose task may still change.
    LIVE = frozenset({OFFERING, OPEN, CLAIMED, IN_PROGRESS, BLOCKED})


@dataclass
class Attempt:
    """One task of a step: ``to`` is its target (an agent or ``cap:X``), ``agent`` who
    claimed it, ``activity`` when its task last changed (created, claimed, updated),
    ``nudged`` when its agent was nudged, ``reason`` why it failed."""

    n: int
    round: int
    to: str
    started: float
    task: int | None = None
    agent: str | None = None
    status: str = AttemptStatus.OFFERING
    ended: float | None = None
    activity: float = 0.0
    nudged: float | None = None
    reason: str | None = None
    progress: int = 0

    @property
    def live(self) -> bool:
        return self.status in AttemptStatus.LIVE

    def to_dict(self) -> dict[str, Any]:
        # Unset fields left out: the store checks every value of the document it is
        # given, on every write (reading back, the defaults fill them in).
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class StepState:
    """One step's progress: ``round`` is its review round (1 first), ``failures``
    the failed attempts of this round (against ``retries``), ``tried`` the agents a
    capability step was taken away from this round (idle), ``ready_at`` when its
    dependencies were done (its timeout runs from there while no agent matches)."""

    status: str = StepStatus.PENDING
    round: int = 1
    failures: int = 0
    result: str | None = None
    reason: str | None = None
    tried: list[str] = field(default_factory=list)
    ready_at: float | None = None
    finished_at: float | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def current(self) -> Attempt | None:
        """The latest attempt, if any."""
        return self.attempts[-1] if self.attempts else None

    @property
    def live(self) -> Attempt | None:
        """The latest attempt if its task may still change."""
        attempt = self.current
        return attempt if attempt is not None and attempt.live else None

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict copies deeply and slowly (written every change).
        found = {k: v for k, v in vars(self).items() if v is not None}
        found["tried"] = list(self.tried)
        found["attempts"] = [attempt.to_dict() for attempt in self.attempts]
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepState:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in names and k != "attempts"}
        attempts = [Attempt.from_dict(a) for a in data.get("attempts", ())]
        return cls(**values, attempts=attempts)


@dataclass
class RunState:
    """The whole document: every step's :class:`StepState` (in the file's order) and
    the agents this run spawned."""

    steps: dict[str, StepState]
    spawned: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, steps: Iterable[str]) -> RunState:
        return cls(steps={name: StepState() for name in steps})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], steps: Iterable[str]) -> RunState:
        """The document as stored, with a fresh state for any step it lacks."""
        stored = data.get("steps", {})
        return cls(
            steps={
                name: StepState.from_dict(stored[name]) if name in stored else StepState()
                for name in steps
            },
            spawned=list(data.get("spawned", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "spawned": list(self.spawned),
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
        }

    def results(self) -> dict[str, str | None]:
        """Each step's latest result (``None`` while it has none), for templates."""
        return {name: step.result for name, step in self.steps.items()}

    def open_tasks(self) -> list[int]:
        """The tasks of attempts still in play."""
        return [
            attempt.task
            for step in self.steps.values()
            for attempt in step.attempts
            if attempt.live and attempt.task is not None
        ]


def tasks_made(state: Mapping[str, Any]) -> dict[str, int]:
    """How many tasks each step of a stored document had (its attempts with a task)."""
    steps: Mapping[str, Any] = state.get("steps", {})
    return {
        name: sum(1 for a in step.get("attempts", ()) if a.get("task") is not None)
        for name, step in steps.items()
    }
