"""Task calls: claim, renew (one, or all an agent holds), release, update, get, list,
history."""

from __future__ import annotations

from ...models import LeaseRenewal, Task
from .. import operations
from ..transport import Call
from .base import _builder, _task_events, _tasks

_task = Task.model_validate_json

claim = _builder(operations.claim, _task, lambda s: s.claim)
renew = _builder(operations.renew, _task, lambda s: s.renew)
renew_held = _builder(
    operations.renew_held, LeaseRenewal.model_validate_json, lambda s: s.renew_held
)
release = _builder(operations.release, _task, lambda s: s.release)
update_task = _builder(operations.update_task, _task, lambda s: s.update_task)
list_tasks = _builder(operations.list_tasks, _tasks, lambda s: s.list_tasks)
task_history = _builder(operations.task_history, _task_events, lambda s: s.task_history)


def get_task(
    task_id: int, *, workspace: str, sweep: bool = True, viewer: str | None = None
) -> Call[Task]:
    """``GET /v1/tasks/{id}`` (the server sweeps lapsed leases first; ``sweep`` is for
    an embedded relay); ``viewer``: read as that agent (``?agent=``, with its token
    when the session has it)."""
    return Call(
        operations.get_task(task_id, workspace=workspace, viewer=viewer),
        _task,
        lambda s: s.get_task(task_id, workspace=workspace, sweep=sweep, viewer=viewer),
    )
