"""Task calls: claim, renew, release, update, get, list, history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

from ...models import Task, TaskEvent, TaskStatus
from ...wire import (
    TASK_EVENT_LIST,
    TASK_LIST,
    LeaseBody,
    ReleaseBody,
    TaskUpdate,
    request_body,
    unchecked,
)
from ..transport import Call
from .base import _get, _segment

if TYPE_CHECKING:
    from ...service import Service


def claim(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/claim``."""
    return _lease("claim", task_id, agent_id, workspace, epoch, lease)


def renew(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/renew``."""
    return _lease("renew", task_id, agent_id, workspace, epoch, lease)


def _lease(
    action: Literal["claim", "renew"],
    task_id: int,
    agent_id: str,
    workspace: str,
    epoch: int | None,
    lease: float | None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/{action}``: a claim and its renewal differ only by the
    action (``lease``: seconds, ``None`` for the server's default)."""

    def local(s: Service) -> Task:
        take = s.claim if action == "claim" else s.renew
        return take(task_id, agent_id, workspace=workspace, epoch=epoch, lease=lease)

    return Call(
        method="POST",
        path=f"/v1/tasks/{_segment(task_id)}/{action}",
        parse=Task.model_validate_json,
        local=local,
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=lambda: request_body(unchecked(LeaseBody)(agent_id=agent_id, lease=lease)),
    )


def release(task_id: int, agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[Task]:
    """``POST /v1/tasks/{id}/release``."""
    return Call(
        method="POST",
        path=f"/v1/tasks/{_segment(task_id)}/release",
        parse=Task.model_validate_json,
        local=lambda s: s.release(task_id, agent_id, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=lambda: request_body(unchecked(ReleaseBody)(agent_id=agent_id)),
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
    report = unchecked(TaskUpdate)(
        agent_id=agent_id,
        status=cast(TaskStatus | None, status),  # as given: the server checks it
        progress=progress,
        note=note,
        result=result,
    )
    return Call(
        method="PATCH",
        path=f"/v1/tasks/{_segment(task_id)}",
        parse=Task.model_validate_json,
        local=lambda s: s.update_task(
            task_id,
            agent_id,
            workspace=workspace,
            epoch=epoch,
            status=status,
            progress=progress,
            note=note,
            result=result,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        # agent_id null (the operator) is sent, not left out, as it always was.
        body={"agent_id": agent_id, **request_body(report)},
    )


def get_task(
    task_id: int, *, workspace: str, sweep: bool = True, viewer: str | None = None
) -> Call[Task]:
    """``GET /v1/tasks/{id}`` (the server sweeps lapsed leases first); ``viewer``:
    read as that agent (``?agent=``, with its token when the session has it)."""
    return _get(
        f"/v1/tasks/{_segment(task_id)}",
        Task.model_validate_json,
        lambda s: s.get_task(task_id, workspace=workspace, sweep=sweep, viewer=viewer),
        workspace=workspace,
        agent=viewer,
        params={"agent": viewer},
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
    return _get(
        "/v1/tasks",
        TASK_LIST.validate_json,
        lambda s: s.list_tasks(
            workspace=workspace, status=status, assignee=assignee, limit=limit, viewer=viewer
        ),
        workspace=workspace,
        agent=viewer,
        params={"status": status, "assignee": assignee, "limit": limit, "agent": viewer},
    )


def task_history(
    task_id: int, *, workspace: str, viewer: str | None = None
) -> Call[list[TaskEvent]]:
    """``GET /v1/tasks/{id}/history``; ``viewer`` as for :func:`get_task`."""
    return _get(
        f"/v1/tasks/{_segment(task_id)}/history",
        TASK_EVENT_LIST.validate_json,
        lambda s: s.task_history(task_id, workspace=workspace, viewer=viewer),
        workspace=workspace,
        agent=viewer,
        params={"agent": viewer},
    )
