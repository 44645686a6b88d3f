"""The seed's task routes: list, get, history, status updates (``PATCH
/api/tasks/{id}/status``) and creation. Claiming is in :mod:`.claims`. Answers
are :func:`~.shapes.task_view`\\s.

An agent token sees and acts on only the tasks its agent may see (it created the
task, holds it, or received its message); any other is 404 like a missing id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from ...models import TaskStatus
from ...wire import LIMIT_BOUNDS
from ..problems import problem
from ..routes import IdPath
from ..routes.stream import viewer_of
from .common import CompatCall, SeedActor, answer, json_body, make_compat_router
from .shapes import task_event_view, task_view

router = make_compat_router()
#: ``?agentId=``: whose view of the tasks a read shows (admin; an agent token reads
#: as its own agent).
Viewer = Annotated[str | None, Query(alias="agentId")]


class SeedTaskReport(SeedActor):
    """``PATCH /api/tasks/{id}/status``: a new status, progress (0-100) with a note,
    a result. ``agentId`` reports (the holder; the creator may close it); with the
    admin token and no ``agentId``, the operator."""

    status: TaskStatus | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    note: str | None = None
    result: str | None = None


@router.get("/api/tasks")
def list_tasks(
    call: CompatCall,
    status: TaskStatus | None = None,
    assignee: str | None = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 100,
    agent: Viewer = None,
) -> Response:
    """Tasks of the workspace, newest first (an agent token: those it may see)."""
    caller = call.caller()
    found = call.service.list_tasks(
        workspace=caller.workspace,
        status=status,
        assignee=assignee,
        limit=limit,
        viewer=viewer_of(caller, agent),
    )
    return answer([task_view(task) for task in found])


@router.post("/api/tasks")
def create_task(call: CompatCall) -> Response:
    """Create a task without a sending agent: not served by this build (501)."""
    call.caller()  # a refused token is still 401, not 501
    return problem(
        501,
        "POST /api/tasks needs the task creation of issue 16 (Service.open_task), "
        "which this server does not have yet; send a claimable message "
        "(POST /api/messages with claimable: true) instead",
        title="not implemented",
    )


@router.get("/api/tasks/{task_id:id}")
def get_task(task_id: IdPath, call: CompatCall, agent: Viewer = None) -> Response:
    """One task."""
    caller = call.caller()
    task = call.service.get_task(
        task_id, workspace=caller.workspace, viewer=viewer_of(caller, agent)
    )
    return answer(task_view(task))


@router.get("/api/tasks/{task_id:id}/events")
def task_events(task_id: IdPath, call: CompatCall, agent: Viewer = None) -> Response:
    """The task's history, oldest first."""
    caller = call.caller()
    found = call.service.task_history(
        task_id, workspace=caller.workspace, viewer=viewer_of(caller, agent)
    )
    return answer([task_event_view(event) for event in found])


@router.patch("/api/tasks/{task_id:id}/status")
def report(
    task_id: IdPath,
    body: Annotated[SeedTaskReport, json_body(SeedTaskReport)],
    call: CompatCall,
) -> Response:
    """Report on the task: the task as it is now."""
    caller = call.caller()
    agent_id = body.agent_id if caller.admin else caller.act_as(body.agent_id, "agentId")
    task = call.service.update_task(
        task_id,
        agent_id,
        workspace=caller.workspace,
        epoch=body.epoch,
        status=body.status,
        progress=body.progress,
        note=body.note,
        result=body.result,
    )
    return answer(task_view(task))
