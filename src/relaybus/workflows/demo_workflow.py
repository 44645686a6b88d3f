"""The workflow ``relaybus demo`` runs: ``review.yaml``, shipped beside this module
(``examples/review.yaml`` is a copy of it), through the workflow runner.

:func:`demo_workflow` loads the file; :func:`cast` turns its ``agents:`` into the
processes the demo starts itself (the author, and ``--reviewers N`` copies of its
reviewer); :class:`WorkflowThread` runs the file's steps with
:class:`~relaybus.workflows.runner.WorkflowRunner` in a thread of its own while the demo
follows the agents. The demo starts the agents rather than having the runner spawn
them, so that it holds their pids, exit codes and reports, and so that ``--server``
works too: ``relaybus serve`` does not spawn (its ``/v1/spawned`` answers 501). The
runner is told not to spawn (``spawn=False``); it finds the agents registered.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, RelayError
from ..models import WorkflowRunStatus
from .demo_agent import CAPABILITY, reviewer_names
from .runner_state import RunState

if TYPE_CHECKING:
    from ..client import Relay
    from .spec import AgentSpec, Workflow

#: The demo's workflow file (its one source: examples/review.yaml is a copy).
WORKFLOW_FILE = Path(__file__).with_name("review.yaml")
#: Interpreter names in a file's command that the demo runs with its own interpreter
#: (the one that has relaybus: ``python3`` on PATH may not, e.g. beside a venv).
PYTHONS = frozenset({"python", "python3"})


@dataclass(frozen=True)
class DemoAgent:
    """An agent the demo starts: its ``name``, ``role`` (``author`` or
    ``reviewer``), ``command`` (argv) and routing labels, from the workflow file."""

    name: str
    role: str
    command: tuple[str, ...]
    tags: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


def demo_workflow() -> Workflow:
    """The demo's workflow, parsed from :data:`WORKFLOW_FILE`."""
    from .load import load

    return load(WORKFLOW_FILE)


def cast(workflow: Workflow, reviewers: int) -> list[DemoAgent]:
    """The author (the file's one agent without capability ``review``) and
    ``reviewers`` reviewers (bob, carol, dave...: the file's agent of that name, or
    else its first reviewer), author first.

    Raises:
        InvalidInput: the file has not exactly one author, or no reviewer.
    """
    authors = [a for a in workflow.agents.values() if CAPABILITY not in a.capabilities]
    found = [a for a in workflow.agents.values() if CAPABILITY in a.capabilities]
    if len(authors) != 1 or not found:
        raise InvalidInput(
            f"{workflow.path}: the demo needs one author and at least one agent with "
            f"capability {CAPABILITY}"
        )
    cast = [_agent(authors[0], "author")]
    for name in reviewer_names(reviewers):
        spec = workflow.agents.get(name, found[0])
        cast.append(_agent(spec, "reviewer", name))
    return cast


def _agent(spec: AgentSpec, role: str, name: str | None = None) -> DemoAgent:
    if not spec.command:
        raise InvalidInput(f"the demo runs commands, not the preset CLI of agent {spec.name}")
    command = list(spec.command)
    if command[0] in PYTHONS:
        command[0] = sys.executable
    return DemoAgent(name or spec.name, role, tuple(command), spec.tags, spec.capabilities)


def review_step(workflow: Workflow) -> str:
    """The step whose task the reviewers race for (offered to ``cap:review``)."""
    for name, step in workflow.steps.items():
        if step.capability == CAPABILITY:
            return name
    raise InvalidInput(f"{workflow.path}: no step is offered to capability {CAPABILITY}")


class WorkflowThread:
    """Runs ``workflow`` with the runner in a thread (the runner's relay, and its
    event tail's, are opened there: a relay belongs to one thread), telling
    ``on_event`` of each runner event and ``on_end`` once it is over.

    Attributes:
        status: how the run ended (``None`` while running, or if it could not start).
        error: the error that stopped it, if one did.
        run_id: the run's id in the run store.
        state: the run's state at the end (each step's attempts, tasks, results).
    """

    def __init__(
        self,
        workflow: Workflow,
        open_relay: Callable[[], Relay],
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_end: Callable[[], None],
    ) -> None:
        self.workflow = workflow
        self.open_relay = open_relay
        self.on_event = on_event
        self.on_end = on_end
        self.status: WorkflowRunStatus | None = None
        self.error: str | None = None
        self.run_id: int | None = None
        self.state: RunState | None = None
        self._thread = threading.Thread(target=self._run, name="demo-workflow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def task_of(self, step: str) -> int | None:
        """The task of ``step``'s latest attempt (``None``: never offered)."""
        found = self.state.steps.get(step) if self.state is not None else None
        attempt = found.current if found is not None else None
        return attempt.task if attempt is not None else None

    def _run(self) -> None:
        from .runner import WorkflowRunner

        try:
            with self.open_relay() as relay:
                runner = WorkflowRunner(
                    relay, self.workflow, open_tail=self.open_relay, progress=self, spawn=False
                )
                runner.start()
                self.run_id = runner.run_id
                self.status = runner.execute()
        except RelayError as exc:
            self.error = exc.message
        finally:
            self.on_end()

    # -- the runner's Progress ---------------------------------------------------------

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        self.state = state
        self.on_event(event)

    def close(self) -> None:
        return None
