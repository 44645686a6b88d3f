"""Task calls: claim, renew, release, update, get, list, history."""

from __future__ import annotations

from ...models import Task, TaskEvent
from ...wire import TASK_EVENT_LIST, TASK_LIST
from .. import operations
from ..transport import Call
from .base import _call

_task = Task.model_validate_json


def claim(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/claim`` (``lease``: seconds, ``None`` for the default)."""
    return _call(
        operations.claim,
        _task,
        lambda s: s.claim,
        task_id,
        agent_id,
        workspace=workspace,
        epoch=epoch,
        lease=lease,
    )


def renew(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/renew``."""
    return _call(
        operations.renew,
        _task,
        lambda s: s.renew,
        task_id,
        agent_id,
        workspace=workspace,
        epoch=epoch,
        lease=lease,
    )


def release(task_id: int, agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[Task]:
    """``POST /v1/tasks/{id}/release``."""
    return _call(
        operations.release,
        _task,
        lambda s: s.release,
        task_id,
        agent_id,
        workspace=workspace,
        epoch=epoch,
    )


def update_task(
    task_id: int,
    agent_id: str | None,
    *,
    workspace: str,
    epoch: int | None = None,
    status: str | None = None,
    progress: int | None = None,
    note: str | None = None,
    result: str | None = None,
) -> Call[Task]:
    """``PATCH /v1/tasks/{id}`` (``agent_id=None``: the operator, admin only)."""
    return _call(
        operations.update_task,
        _task,
        lambda s: s.update_task,
        task_id,
        agent_id,
        workspace=workspace,
        epoch=epoch,
        status=status,
        progress=progress,
        note=note,
        result=result,
    )


def get_task(
    task_id: int, *, workspace: str, sweep: bool = True, viewer: str | None = None
) -> Call[Task]:
    """``GET /v1/tasks/{id}`` (the server sweeps lapsed leases first); ``viewer``:
    read as that agent (``?agent=``, with its token when the session has it)."""
    return Call(
        operations.get_task(task_id, workspace=workspace, viewer=viewer),
        _task,
        lambda s: s.get_task(task_id, workspace=workspace, sweep=sweep, viewer=viewer),
    )


def list_tasks(
    *,
    workspace: str,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
    viewer: str | None = None,
) -> Call[list[Task]]:
    """``GET /v1/tasks``; ``viewer``: only the tasks that agent may see."""
    return _call(
        operations.list_tasks,
        TASK_LIST.validate_json,
        lambda s: s.list_tasks,
        workspace=workspace,
        status=status,
        assignee=assignee,
        limit=limit,
        viewer=viewer,
    )


def task_history(
    task_id: int, *, workspace: str, viewer: str | None = None
) -> Call[list[TaskEvent]]:
    """``GET /v1/tasks/{id}/history``; ``viewer`` as for :func:`get_task`."""
    return _call(
        operations.task_history,
        TASK_EVENT_LIST.validate_json,
        lambda s: s.task_history,
        task_id,
        workspace=workspace,
        viewer=viewer,
    )
