"""Acting on a workflow run from outside its runner: ``relaybus workflow cancel``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Conflict
from ..models import TaskStatus, WorkflowRun, WorkflowRunStatus
from . import runner_agents, runner_tasks
from .runner_state import RunState
from .runner_store import RunStore, holder_alive

if TYPE_CHECKING:
    from ..client import Relay

#: Tries at marking a run cancelled while its runner writes it too.
CANCEL_TRIES = 10


def cancel_run(relay: Relay, run: WorkflowRun) -> WorkflowRun:
    """Mark ``run`` cancelled and cancel its open tasks. A live runner notices and
    stops (releasing its agents); for a dead one, its spawned agents are released here.

    Raises:
        Conflict: the run is finished already.
    """
    store = RunStore(relay)
    alive = holder_alive(run)
    for _ in range(CANCEL_TRIES):
        if run.status != WorkflowRunStatus.RUNNING:
            raise Conflict(f"workflow run {run.id} is {run.status.value}: nothing to cancel")
        try:
            run = store.update(run, status=WorkflowRunStatus.CANCELLED)
            break
        except Conflict:
            run = store.get(run.id)  # its runner wrote it meanwhile: read it again
    else:
        raise Conflict(f"workflow run {run.id} kept changing: try the cancel again")
    note = f"workflow run {run.id} cancelled"
    state = RunState.from_dict(run.state, run.state.get("steps", {}))
    for task_id in state.open_tasks():
        runner_tasks.cancel(relay, task_id, note)
    for task in runner_tasks.run_tasks(relay, run).values():
        if not task.status.terminal and task.status != TaskStatus.CANCELED:
            runner_tasks.cancel(relay, task.id, note)
    if not alive:
        for name in state.spawned:
            runner_agents.release(relay, name, note)
    return run
