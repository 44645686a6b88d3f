"""The runner's plumbing: :class:`WorkflowRunnerBase` holds a run's state and writes it to
the run store (with heartbeats, noticing a cancel or a takeover), follows the event
log in a thread, spawns and releases the file's agents and reports progress. The
scheduling itself is :class:`~relaybus.workflows.runner.WorkflowRunner`'s.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, RelayError
from ..models import Task, WorkflowRun, WorkflowRunStatus
from . import runner_agents, runner_tasks
from .progress import Progress, Quiet
from .runner_state import AttemptStatus, RunState, StepStatus
from .runner_store import HEARTBEAT_SECONDS, RunStore, runner_id
from .spec import Workflow

if TYPE_CHECKING:
    from ..client import AgentHandle, Relay

#: The longest single wait on the event log (seconds): how soon the tail notices a stop.
TAIL_SLICE = 0.5
#: Event kinds the runner follows.
KINDS = ("task.", "agent.", "workflow.")
#: Seconds a change of the state may wait for the next ones before it is written: one
#: write for a batch of changes (each write is a transaction on the one SQLite writer
#: that the agents wait for too). Nothing is lost meanwhile: a resume finds every task
#: the run made by its meta and dedupe key, and acts on each task's current status.
WRITE_EVERY = 0.2


class WorkflowRunnerBase:
    """A workflow run's state, its store, its event tail, its agents.

    Args:
        relay: the relay the tasks and the run store live on.
        workflow: the parsed file (for a resume: parsed from the run's stored source).
        open_tail: opens a second relay of the same settings for the event tail's
            thread (a relay's connection belongs to one thread).
        progress: where events are reported (:mod:`.progress`).
        keep_agents: leave the agents this run spawned running at the end.
        spawn: spawn the file's ``agents:`` (tests that start agents themselves: False).
    """

    def __init__(
        self,
        relay: Relay,
        workflow: Workflow,
        *,
        open_tail: Callable[[], Relay],
        progress: Progress | None = None,
        keep_agents: bool = False,
        spawn: bool = True,
    ) -> None:
        self.relay = relay
        self.workflow = workflow
        self.store = RunStore(relay)
        self.folder = workflow.path.parent if workflow.path is not None else Path.cwd()
        self.progress: Progress = progress or Quiet()
        self.keep_agents = keep_agents
        self.spawn = spawn
        self.open_tail = open_tail
        self.me = runner_id()
        self.run: WorkflowRun | None = None
        self.state = RunState.fresh(workflow.steps)
        self.tasks: dict[int, tuple[str, int]] = {}
        self.found: dict[tuple[str, int], Task] = {}
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.cursor = 0
        self.lost = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sender: AgentHandle | None = None
        self._dirty = False
        self._urgent = False  # write at the next flush, without waiting for WRITE_EVERY
        self._beat = 0.0
        self._written = 0.0

    @property
    def run_id(self) -> int:
        assert self.run is not None, "start() or attach() first"
        return self.run.id

    def _tail(self) -> None:
        """The event tail (its own thread and relay): task, agent and workflow events
        into the queue."""
        try:
            relay = self.open_tail()
        except RelayError as exc:
            self.queue.put(("error", exc))
            return
        cursor = self.cursor
        try:
            while not self._stop.is_set():
                found = relay.wait_events(TAIL_SLICE, since=cursor, limit=1000, kinds=KINDS)
                for event in found:
                    cursor = event.id
                    self.queue.put(("event", event))
        except RelayError as exc:
            self.queue.put(("error", exc))
        finally:
            if relay is not self.relay:
                relay.close()

    def _flush(self) -> None:
        """Write the state if it changed (at most every :data:`WRITE_EVERY` seconds,
        unless urgent), or a heartbeat when one is due."""
        now = time.time()
        beat = now - self._beat >= HEARTBEAT_SECONDS
        due = self._dirty and (self._urgent or now - self._written >= WRITE_EVERY)
        if due or beat:
            self._save(heartbeat=beat)

    def _write_due(self) -> float | None:
        """When :meth:`_flush` will write the changes made so far (``None``: none)."""
        return self._written + WRITE_EVERY if self._dirty else None

    # -- finishing ---------------------------------------------------------------------

    def _finish(self, status: WorkflowRunStatus, why: str | None = None) -> None:
        """End the run: cancel the tasks still open, write the final state."""
        assert self.run is not None
        self._cancel_open(f"workflow run {self.run_id} {status.value}")
        self._save(status=status)
        self.emit("run.finished", name=self.workflow.name, status=status.value, reason=why)

    def _cancel_open(self, note: str) -> None:
        for step in self.state.steps.values():
            attempt = step.live
            if attempt is not None and attempt.task is not None:
                runner_tasks.cancel(self.relay, attempt.task, note)
                attempt.status = AttemptStatus.CANCELED
                attempt.ended = time.time()
            if step.status not in StepStatus.FINAL and step.status != StepStatus.PENDING:
                step.status = StepStatus.CANCELLED

    # -- the store ---------------------------------------------------------------------

    def _save(self, *, status: WorkflowRunStatus | None = None, heartbeat: bool = True) -> None:
        """Write the state (and ``status``) at the version last read. A Conflict means
        someone else wrote the run: a cancel (stop), or a resume (this runner lost it)."""
        assert self.run is not None
        try:
            self.run = self.store.update(
                self.run, status=status, state=self.state.to_dict(), heartbeat=heartbeat
            )
        except Conflict:
            self._reread()
            if status is not None and not self.lost and self.run.status == status:
                return
            if not self.lost and self.run.status == WorkflowRunStatus.RUNNING:
                self._save(status=status, heartbeat=heartbeat)  # only a heartbeat raced
            return
        self._dirty = self._urgent = False
        self._written = time.time()
        if heartbeat:
            self._beat = self._written

    def _reread(self) -> None:
        """Read the run again after someone else wrote it."""
        assert self.run is not None
        run = self.store.get(self.run_id)
        if run.runner != self.me and run.status == WorkflowRunStatus.RUNNING:
            self.lost = True
            self.emit("run.lost", name=self.workflow.name, agent=run.runner,
                      reason=f"run {run.id} was taken over by {run.runner}")  # fmt: skip
            self.run = run
            return
        if run.status == WorkflowRunStatus.CANCELLED and self.run.status != run.status:
            self.run = run
            self._cancel_open(f"workflow run {run.id} cancelled")
            with contextlib.suppress(Conflict):
                self.run = self.store.update(run, state=self.state.to_dict())
            self.emit("run.finished", name=self.workflow.name, status=run.status.value,
                      reason="cancelled")  # fmt: skip
            return
        self.run = run

    # -- agents ------------------------------------------------------------------------

    def _spawn_agents(self) -> None:
        """Spawn the file's agents not running yet, each recorded as soon as it runs
        (to be released however the run ends). One that cannot be spawned fails the
        run, and the error is raised."""
        try:
            for spec in self.workflow.agents.values():
                if runner_agents.one_shot(spec):  # spawned for each of its tasks
                    runner_agents.register(self.relay, spec)
            for spec in runner_agents.to_spawn(self.relay, self.workflow):
                agent = runner_agents.spawn(self.relay, spec, self.folder)
                if agent.name not in self.state.spawned:
                    self.state.spawned.append(agent.name)
                self._dirty = self._urgent = True  # released however the run ends
                self.emit("agent.spawned", agent=agent.name, pid=agent.pid)
        except RelayError as exc:
            self._finish(WorkflowRunStatus.FAILED, f"cannot spawn the agents: {exc.message}")
            raise
        self._flush()

    def _spawn_for(self, agent: str, task: Task, body: str) -> None:
        """Spawn the :func:`~.runner_agents.one_shot` agent ``agent`` for ``task`` (its
        text ``body`` as the prompt); one that cannot be spawned fails the task, so the
        step's retries apply."""
        spec = self.workflow.agents[agent]
        try:
            spawned = runner_agents.spawn(self.relay, spec, self.folder, task=body, task_id=task.id)
        except RelayError as exc:
            with contextlib.suppress(RelayError):
                self.relay.update_task(task.id, status="failed", note=exc.message)
            return
        if spawned.name not in self.state.spawned:
            self.state.spawned.append(spawned.name)
        self._dirty = True
        self.emit("agent.spawned", agent=spawned.name, pid=spawned.pid, task=task.id)

    def _release_agents(self) -> None:
        if self.keep_agents:
            return
        for name in self.state.spawned:
            if runner_agents.release(self.relay, name, f"workflow run {self.run_id} ended"):
                self.emit("agent.released", agent=name)
        if self._sender is not None:
            with contextlib.suppress(RelayError):
                self._sender.update(status="offline")

    # -- reporting ---------------------------------------------------------------------

    def emit(self, kind: str, **data: Any) -> None:
        """Report an event to :attr:`progress` (``None`` fields left out)."""
        event: dict[str, Any] = {"event": kind, "t": round(time.time(), 3)}
        if self.run is not None:
            event["run"] = self.run.id
        event.update((k, v) for k, v in data.items() if v is not None)
        self.progress(event, self.state)
