"""The relay calls the runner makes about one step's task: offer it (once per
attempt, found again after a crash), cancel it, nudge its agent, and pick another
agent for it.

Kept apart from the scheduler (:mod:`.runner`), which decides when; this says how.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, RelayError
from ..models import AgentStatus, Task, WorkflowRun

if TYPE_CHECKING:
    from ..client import AgentHandle, Relay

#: Tasks read per page when looking for a run's tasks after a crash.
PAGE = 1000
#: Pages read at most when looking for them (bounds the scan of a huge task table).
MAX_PAGES = 50


def dedupe_key(run_id: int, step: str, attempt: int) -> str:
    """The dedupe key of a step's attempt: ``workflow:RUN:STEP:ATTEMPT``."""
    return f"workflow:{run_id}:{step}:{attempt}"


def offer(
    relay: Relay,
    *,
    workflow: str,
    run_id: int,
    step: str,
    attempt: int,
    to: str,
    body: str,
) -> Task:
    """Open the task of a step's attempt, offered to ``to`` (an agent or ``cap:X``).
    If that attempt's task exists already (a runner killed just after making it), that
    task is returned, never a second one.

    Raises:
        NotFound: no agent matches ``to`` (yet).
    """
    key = dedupe_key(run_id, step, attempt)
    try:
        return relay.create_task(
            f"{workflow}/{step}",
            to=to,
            body=body,
            meta={"workflow": workflow, "run": run_id, "step": step, "attempt": attempt},
            dedupe_key=key,
            source="workflow",
        )
    except Conflict as exc:
        found = exc.details.get("task")
        if not isinstance(found, int):
            raise
        return relay.task(found)


def run_tasks(relay: Relay, run: WorkflowRun) -> dict[tuple[str, int], Task]:
    """Every task made for ``run``, by (step, attempt), from its meta: newest first,
    down to the run's start. For a resume: a task made just before the runner died
    may be missing from the run's state."""
    found: dict[tuple[str, int], Task] = {}
    for task in _since(relay, run.created_at.timestamp()):
        meta: Mapping[str, Any] = task.meta
        if meta.get("run") == run.id and isinstance(meta.get("attempt"), int):
            found.setdefault((str(meta.get("step")), int(meta["attempt"])), task)
    return found


def _since(relay: Relay, start: float) -> Iterator[Task]:
    before: int | None = None
    for _ in range(MAX_PAGES):
        page = relay.tasks(before=before, limit=PAGE)
        for task in page:
            if task.created_at.timestamp() < start - 1.0:
                return
            yield task
        if len(page) < PAGE:
            return
        before = page[-1].id


def cancel(relay: Relay, task_id: int, note: str) -> Task | None:
    """Cancel a task as the operator; ``None`` when it had finished already (or is
    gone)."""
    try:
        return relay.update_task(task_id, status="canceled", note=note)
    except (Conflict, NotFound):
        return None


def nudge(
    sender: AgentHandle, to: str, *, task: Task | None, task_id: int, title: str, run_id: int
) -> None:
    """Message ``to`` (the agent holding or being offered a step's task) that the task
    still waits for it. Raises RelayError (the agent is gone)."""
    if task is not None and task.assignee:
        text = (
            f"task #{task_id} is still yours: {title}. Report progress or finish it: "
            f"relaybus task {task_id} --status done --result TEXT "
            "(or --status failed --note WHY)."
        )
    else:
        text = f"task #{task_id} waits for you: {title}. Claim it: relaybus claim {task_id}."
    sender.send(
        to,
        text,
        subject=f"nudge: {title}",
        meta={"workflow_run": run_id, "task_id": task_id, "nudge": True},
    )


def other_agent(relay: Relay, capability: str, skip: set[str]) -> str | None:
    """An agent with ``capability`` that is not offline and not in ``skip`` (the first
    by id), to offer a step to by name; ``None`` when there is none."""
    with contextlib.suppress(RelayError):
        for agent in relay.agents(capability=capability):
            if agent.status != AgentStatus.OFFLINE and agent.id not in skip:
                return agent.id
    return None
