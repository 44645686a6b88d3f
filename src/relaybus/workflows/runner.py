"""The workflow runner: runs a parsed workflow's steps as relaybus tasks.

A step whose ``depends_on`` (and review's ``of``) are done is offered at once, so
independent steps run side by side (fan-out) and a step with several dependencies
waits for all of them (fan-in). Each attempt of a step is one task, to its named
agent or to ``cap:X``, with ``meta`` ``{workflow, run, step, attempt}`` and the
dedupe key ``workflow:RUN:STEP:ATTEMPT`` (:mod:`.runner_tasks`): a runner killed
just after making a task finds it again, never makes it twice.

The runner waits on the relay's event log (``wait_events`` in a thread, feeding one
queue with the results of verification commands), not on a polling loop, and wakes
for its own deadlines: a step's timeout (the task is cancelled, the attempt failed);
an idle step (no change of its task for ``nudge_after``: its agent is sent a message
once; ``retry_after`` later, still idle, the task is cancelled and the step offered,
by name, to another agent with its capability, or for a named agent the attempt
fails). A done task's result is checked (:mod:`.verify`); a failed attempt is tried
again ``retries`` times. A reviewing step (``review: {of, approve, max_rounds}``)
whose result lacks ``approve`` sends step ``of`` round again, then itself, up to
``max_rounds`` rounds; then it fails.

After every batch of changes (at most ``WRITE_EVERY`` seconds after the first, at
once for a step taken away from an idle agent) the run's state
(:mod:`.runner_state`) is written to the run store
(:class:`~relaybus.workflows.runner_store.RunStore`) with a heartbeat, so that
``resume`` can take over a run whose runner died and repeat no finished step; a
``cancel`` from elsewhere is noticed on the event log (``workflow.finished``) or on
the next write (Conflict).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, RelayError
from ..models import Event, Task, WorkflowRun, WorkflowRunStatus
from . import runner_tasks
from .runner_agents import one_shot
from .runner_base import TAIL_SLICE, WorkflowRunnerBase
from .runner_state import Attempt, AttemptStatus, RunState, StepState, StepStatus
from .runner_store import HEARTBEAT_SECONDS, holder_alive
from .spec import StepSpec
from .template import render
from .verify import Verdict, needs_process, verify

if TYPE_CHECKING:
    from ..client import AgentHandle

#: Task events that count as work on a step (an idle step has none of these).
ACTIVITY = frozenset({"task.created", "task.claimed", "task.updated"})
#: Agent events after which a step waiting for an agent is offered again.
ARRIVALS = frozenset({"agent.registered", "agent.online", "agent.updated", "agent.spawned"})


class WorkflowRunner(WorkflowRunnerBase):
    """Runs one workflow run to its end (:meth:`execute`), after :meth:`start` (a new
    run) or :meth:`attach` (``resume``: take over a run whose runner died). Takes the
    arguments of :class:`~relaybus.workflows.runner_base.WorkflowRunnerBase`.
    """

    # -- starting ----------------------------------------------------------------------

    def start(self) -> WorkflowRun:
        """Create the run in the store, held by this process."""
        self.cursor = self.relay.last_event_id()
        self.run = self.store.create(self.workflow, self.state.to_dict())
        self._beat = time.time()
        self.emit("run.started", name=self.workflow.name, file=self.run.file)
        return self.run

    def attach(self, run: WorkflowRun) -> WorkflowRun:
        """Take over ``run`` (``resume``): its steps' state as stored, its open tasks
        followed again, its tasks made just before the old runner died found by meta.

        Raises:
            Conflict: the run is finished, or its runner is alive.
        """
        if run.status != WorkflowRunStatus.RUNNING:
            raise Conflict(f"workflow run {run.id} is {run.status.value}: nothing to resume")
        if holder_alive(run) and run.runner != self.me:
            raise Conflict(
                f"workflow run {run.id} is held by the runner {run.runner}, which is alive "
                "(cancel it, or wait until its heartbeat is stale)",
                runner=run.runner,
            )
        self.cursor = self.relay.last_event_id()
        self.state = RunState.from_dict(run.state, self.workflow.steps)
        self.run = self.store.update(run, runner=self.me, heartbeat=True)
        self._beat = time.time()
        self.found = runner_tasks.run_tasks(self.relay, self.run)
        self.emit("run.resumed", name=self.workflow.name, agent=self.me)
        for name, step in self.state.steps.items():
            attempt = step.live
            if attempt is None:
                continue
            task = self._task_of(name, attempt)
            if task is None:  # never made: offer this attempt again, same number
                step.attempts.pop()
                step.status = StepStatus.PENDING
                continue
            self._follow(name, attempt, task)
            attempt.activity = max(attempt.activity, time.time())  # idle from the takeover
            if step.status == StepStatus.VERIFYING:
                step.status = StepStatus.RUNNING  # the check died with the old runner
            self._apply(name, attempt, task)
        self._save()
        return self.run

    def _task_of(self, name: str, attempt: Attempt) -> Task | None:
        if attempt.task is not None:
            with contextlib.suppress(NotFound):
                return self.relay.task(attempt.task)
        return self.found.get((name, attempt.n))

    # -- the loop ----------------------------------------------------------------------

    def execute(self) -> WorkflowRunStatus:
        """Run until every step is done, one fails for good, or the run is cancelled;
        returns how it ended. Spawns the file's agents first; releases the ones it
        spawned at the end (unless ``keep_agents``)."""
        assert self.run is not None, "start() or attach() first"
        tail = threading.Thread(target=self._tail, name="workflow-tail", daemon=True)
        tail.start()
        self._threads.append(tail)
        try:
            if self.spawn:
                self._spawn_agents()
            while self.run.status == WorkflowRunStatus.RUNNING and not self.lost:
                self._advance()  # offer what the events made ready, then write once
                self._flush()
                if self.run.status != WorkflowRunStatus.RUNNING or self.lost:
                    break
                self._handle(self._next(self._wait_seconds()))
                self._drain()
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=TAIL_SLICE * 4)
            if not self.lost:
                self._release_agents()
        return self.run.status

    def _drain(self) -> None:
        """Handle what the queue holds now, without waiting."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._handle(self.queue.get_nowait())

    def _next(self, seconds: float) -> tuple[str, Any] | None:
        try:
            return self.queue.get(timeout=seconds)
        except queue.Empty:
            return None

    def _wait_seconds(self) -> float:
        """Seconds until the next deadline: a heartbeat, a timeout, a nudge."""
        now = time.time()
        due = self._beat + HEARTBEAT_SECONDS
        write = self._write_due()
        if write is not None:
            due = min(due, write)
        for name, step in self.state.steps.items():
            spec = self.workflow.steps[name]
            attempt = step.live
            if step.status == StepStatus.WAITING and step.ready_at is not None:
                due = min(due, step.ready_at + spec.timeout)
            if attempt is None or step.status == StepStatus.VERIFYING:
                continue
            due = min(due, attempt.started + spec.timeout)
            idle = self._nudge_after(spec)
            if attempt.nudged is None:
                due = min(due, attempt.activity + idle)
            else:
                due = min(due, attempt.activity + idle + self.workflow.retry_after)
        return min(max(due - now, 0.0), HEARTBEAT_SECONDS)

    def _nudge_after(self, spec: StepSpec) -> float:
        return spec.nudge_after if spec.nudge_after is not None else self.workflow.nudge_after

    def _handle(self, item: tuple[str, Any] | None) -> None:
        if item is None:
            return
        kind, payload = item
        if kind == "event":
            self._on_event(payload)
        elif kind == "verified":
            name, n, result, verdict = payload
            self._verified(name, n, result, verdict)
        elif kind == "error":
            raise payload

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.kind.startswith("task."):
            self._on_task_event(event)
        elif event.kind in ARRIVALS:
            for name, step in self.state.steps.items():
                if step.status == StepStatus.WAITING:
                    self._offer(name)
        elif event.kind == "workflow.finished" and event.data.get("run_id") == self.run_id:
            self._reread()  # a cancel

    def _on_task_event(self, event: Event) -> None:
        task_id = event.data.get("task_id")
        if not isinstance(task_id, int):
            return
        where = self.tasks.get(task_id)
        if where is None:
            return
        name, n = where
        step = self.state.steps[name]
        attempt = step.live
        if attempt is None or attempt.n != n:
            return  # an earlier attempt's task: it no longer counts
        at = event.created_at.timestamp()
        # Who claimed it, its activity and progress are not written at once: a resume
        # reads them from the task again; they go with the next write or heartbeat.
        if event.kind in ACTIVITY:
            attempt.activity = max(attempt.activity, at)
        if event.kind == "task.claimed":
            attempt.agent = event.agent_id
            attempt.status = AttemptStatus.CLAIMED
            step.status = StepStatus.RUNNING
            self.emit("step.claimed", step=name, attempt=n, task=task_id, agent=attempt.agent)
        elif event.kind == "task.released":
            attempt.status = AttemptStatus.OPEN
            attempt.agent = None
            step.status = StepStatus.OFFERED
        elif event.kind == "task.updated":
            status = event.data.get("status")
            if status in ("done", "failed", "canceled"):
                self._ended(name, attempt, event, str(status))
                return
            if status is not None and event.data.get("previous") != status:
                attempt.status = str(status)
            if event.data.get("progress") is not None:
                attempt.progress = int(event.data["progress"])
                self.emit(
                    "step.progress",
                    step=name,
                    attempt=n,
                    task=task_id,
                    progress=attempt.progress,
                    note=event.data.get("note"),
                )

    def _ended(self, name: str, attempt: Attempt, event: Event, status: str) -> None:
        """A task's last change. Its holder's last update carries what the step needs
        (the result, or the note of a failure): then the task is not read again."""
        said = event.data.get("result" if status == "done" else "note")
        if event.agent_id is None or not isinstance(said, str):
            self._apply(name, attempt, self.relay.task(event.data["task_id"]))
            return
        result, note = (said, None) if status == "done" else (None, said)
        self._settle(name, attempt, status, event.agent_id, result, note)

    def _apply(self, name: str, attempt: Attempt, task: Task) -> None:
        """Act on a task's current status (on its change, and when resuming)."""
        self._settle(
            name, attempt, task.status.value, task.assignee, task.result, task.progress_note
        )

    def _settle(
        self,
        name: str,
        attempt: Attempt,
        status: str,
        assignee: str | None,
        result: str | None,
        note: str | None,
    ) -> None:
        step = self.state.steps[name]
        if assignee:
            attempt.agent = assignee
        if status in (AttemptStatus.CLAIMED, AttemptStatus.IN_PROGRESS, AttemptStatus.BLOCKED):
            attempt.status = status
            step.status = StepStatus.RUNNING
        elif status == AttemptStatus.OPEN:
            attempt.status = status
            step.status = StepStatus.OFFERED
        elif status == AttemptStatus.DONE:
            attempt.status = AttemptStatus.DONE
            attempt.ended = time.time()
            self._check(name, attempt, result or "")
        else:
            attempt.status = status
            why = note or f"the task was {status}"
            self._attempt_failed(name, attempt, why)
        self._dirty = True

    # -- verification and review -------------------------------------------------------

    def _check(self, name: str, attempt: Attempt, result: str) -> None:
        spec = self.workflow.steps[name]
        step = self.state.steps[name]
        if not needs_process(spec.verify):
            self._verified(name, attempt.n, result, verify(result, spec.verify, self.folder, 0))
            return
        step.status = StepStatus.VERIFYING
        self.emit("step.verifying", step=name, attempt=attempt.n, task=attempt.task)

        def check() -> None:
            verdict = verify(result, spec.verify, self.folder, spec.timeout)
            self.queue.put(("verified", (name, attempt.n, result, verdict)))

        thread = threading.Thread(target=check, name=f"verify-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _verified(self, name: str, n: int, result: str, verdict: Verdict) -> None:
        step = self.state.steps[name]
        spec = self.workflow.steps[name]
        attempt = step.current
        if attempt is None or attempt.n != n or step.status in StepStatus.FINAL:
            return
        self._dirty = True
        if not verdict.ok:
            attempt.status = AttemptStatus.FAILED
            self._attempt_failed(name, attempt, f"verification failed: {verdict.reason}")
            return
        step.result = result
        review = spec.review
        if review is not None and review.approve not in result:
            if step.round >= review.max_rounds:
                why = f"not approved after {step.round} round(s) (no {review.approve!r})"
                self._step_failed(name, why, agent=attempt.agent)
                return
            self._next_round(name, review.of)
            return
        step.status = StepStatus.DONE
        step.finished_at = time.time()
        self.emit(
            "step.done",
            step=name,
            attempt=n,
            task=attempt.task,
            agent=attempt.agent,
            result=result,
        )

    def _next_round(self, name: str, of: str) -> None:
        """A review did not approve: step ``of`` runs again, then this one."""
        for which in (of, name):
            step = self.state.steps[which]
            step.round += 1
            step.failures = 0
            step.tried = []
            step.ready_at = None
            step.status = StepStatus.PENDING
        reviewed = self.workflow.steps[name].review
        assert reviewed is not None
        self.emit(
            "step.review",
            step=name,
            round=self.state.steps[name].round,
            of=reviewed.max_rounds,
            reason=f"{of} runs again",
        )

    # -- offering ----------------------------------------------------------------------

    def _deps(self, spec: StepSpec) -> tuple[str, ...]:
        extra = (spec.review.of,) if spec.review is not None else ()
        return (*spec.depends_on, *extra)

    def _advance(self) -> None:
        """Offer every ready step, act on due deadlines, and end the run when every
        step is done or one failed for good."""
        now = time.time()
        states = self.state.steps
        for name in self.workflow.order():
            step = states[name]
            spec = self.workflow.steps[name]
            if step.status == StepStatus.PENDING:
                if all(states[d].status == StepStatus.DONE for d in self._deps(spec)):
                    self._offer(name)
                    self._drain()  # a fan-out's steps done meanwhile: recorded now
            elif step.status == StepStatus.WAITING:
                if step.ready_at is not None and now >= step.ready_at + spec.timeout:
                    target = self._target(spec)
                    self._step_failed(name, f"no agent matched {target} in {spec.timeout:g} s")
            elif step.status in (StepStatus.OFFERED, StepStatus.RUNNING):
                self._deadlines(name, step, spec, now)
        if any(step.status == StepStatus.FAILED for step in states.values()):
            failed = next(n for n, s in states.items() if s.status == StepStatus.FAILED)
            self._finish(WorkflowRunStatus.FAILED, f"step {failed} failed")
        elif all(step.status == StepStatus.DONE for step in states.values()):
            self._finish(WorkflowRunStatus.DONE)

    def _target(self, spec: StepSpec) -> str:
        return spec.agent if spec.agent is not None else f"cap:{spec.capability}"

    def _offer(self, name: str, to: str | None = None) -> None:
        """Make the step's next attempt: its task, offered to ``to`` (default: the
        step's agent or capability). No agent matching yet: the step waits."""
        spec = self.workflow.steps[name]
        step = self.state.steps[name]
        now = time.time()
        if step.ready_at is None:
            step.ready_at = now
        target = to or self._target(spec)
        n = len(step.attempts) + 1
        body = render(spec.task, self.state.results(), workflow=self.workflow, run_id=self.run_id)
        attempt = Attempt(n=n, round=step.round, to=target, started=now, activity=now)
        task = self.found.get((name, n))
        if task is None:
            try:
                task = runner_tasks.offer(
                    self.relay,
                    workflow=self.workflow.name,
                    run_id=self.run_id,
                    step=name,
                    attempt=n,
                    to=target,
                    body=body,
                )
            except NotFound as exc:
                if step.status != StepStatus.WAITING:
                    step.status = StepStatus.WAITING
                    self._dirty = True
                    self.emit("step.waiting", step=name, to=target, reason=exc.message)
                return
        attempt.task = task.id
        attempt.status = AttemptStatus.OPEN
        step.attempts.append(attempt)
        step.status = StepStatus.OFFERED
        self._follow(name, attempt, task)
        self._dirty = True
        self.emit("step.offered", step=name, attempt=n, task=task.id, to=target)
        agent = self.workflow.agents.get(target)
        if agent is not None and one_shot(agent) and task.status.value == AttemptStatus.OPEN:
            self._spawn_for(target, task, body)
        if task.status.value != AttemptStatus.OPEN:  # found again: it moved on meanwhile
            self._apply(name, attempt, task)

    def _follow(self, name: str, attempt: Attempt, task: Task) -> None:
        attempt.task = task.id
        self.tasks[task.id] = (name, attempt.n)

    # -- deadlines: timeouts, nudges, offering elsewhere ------------------------------

    def _deadlines(self, name: str, step: StepState, spec: StepSpec, now: float) -> None:
        attempt = step.live
        if attempt is None or attempt.task is None:
            return
        if now >= attempt.started + spec.timeout:
            runner_tasks.cancel(self.relay, attempt.task, f"timed out after {spec.timeout:g} s")
            attempt.status = AttemptStatus.TIMEOUT
            self._attempt_failed(name, attempt, f"timed out after {spec.timeout:g} s")
            return
        idle_after = self._nudge_after(spec)
        idle = now - attempt.activity
        if attempt.nudged is None and idle >= idle_after:
            self._nudge(name, attempt)
        elif attempt.nudged is not None and idle >= idle_after + self.workflow.retry_after:
            self._elsewhere(name, step, spec, attempt, idle)

    def _nudge(self, name: str, attempt: Attempt) -> None:
        assert attempt.task is not None
        attempt.nudged = time.time()
        self._dirty = True
        to = attempt.agent or attempt.to
        try:
            task = self.relay.task(attempt.task)
            runner_tasks.nudge(
                self._nudger(),
                to,
                task=task,
                task_id=attempt.task,
                title=task.title,
                run_id=self.run_id,
            )
        except RelayError as exc:
            self.emit("step.nudged", step=name, attempt=attempt.n, task=attempt.task,
                      agent=to, reason=f"could not send: {exc.message}")  # fmt: skip
            return
        self.emit("step.nudged", step=name, attempt=attempt.n, task=attempt.task, agent=to)

    def _nudger(self) -> AgentHandle:
        """The agent nudges come from: ``workflow-NAME``, registered on first use."""
        if self._sender is None:
            self._sender = self.relay.register(
                f"workflow-{self.workflow.name}", label=f"workflow runner {self.workflow.name}"
            )
        return self._sender

    def _elsewhere(
        self, name: str, step: StepState, spec: StepSpec, attempt: Attempt, idle: float
    ) -> None:
        """Still idle after the nudge: take the task back and offer the step to another
        agent with the capability (by name); for a named agent, fail the attempt."""
        assert attempt.task is not None
        who = attempt.agent or attempt.to
        why = f"{who} idle for {idle:.0f} s after a nudge"
        runner_tasks.cancel(self.relay, attempt.task, why)
        attempt.status = AttemptStatus.CANCELED
        attempt.reason = why
        attempt.ended = time.time()
        # At once: a resume would read the cancelled task as a failed attempt.
        self._dirty = self._urgent = True
        if spec.capability is None:
            self._attempt_failed(name, attempt, why, counted=True)
            return
        if attempt.agent:
            step.tried.append(attempt.agent)
        elif not attempt.to.startswith("cap:"):
            step.tried.append(attempt.to)
        other = runner_tasks.other_agent(self.relay, spec.capability, set(step.tried))
        if other is None:
            self._attempt_failed(
                name, attempt, f"{why}; no other agent has capability {spec.capability}"
            )
            return
        self.emit("step.reoffered", step=name, attempt=attempt.n, task=attempt.task,
                  agent=other, reason=why)  # fmt: skip
        self._offer(name, to=other)

    # -- failing and finishing ---------------------------------------------------------

    def _attempt_failed(self, name: str, attempt: Attempt, why: str, counted: bool = True) -> None:
        step = self.state.steps[name]
        spec = self.workflow.steps[name]
        attempt.reason = why
        attempt.ended = attempt.ended or time.time()
        self._dirty = True
        if counted:
            step.failures += 1
        if step.failures <= spec.retries:
            self.emit("step.retry", step=name, attempt=attempt.n, task=attempt.task,
                      agent=attempt.agent, reason=why)  # fmt: skip
            self._offer(name)
            return
        self._step_failed(name, why, agent=attempt.agent)

    def _step_failed(self, name: str, why: str, agent: str | None = None) -> None:
        step = self.state.steps[name]
        step.status = StepStatus.FAILED
        step.reason = why
        step.finished_at = time.time()
        self._dirty = True
        attempt = step.current
        self.emit("step.failed", step=name, attempt=attempt.n if attempt else None,
                  task=attempt.task if attempt else None, agent=agent, reason=why)  # fmt: skip
