"""The seed's task routes: create, list, get, history, status updates (``PATCH
/api/tasks/{id}/status``). Claiming is in :mod:`.claims`. Answers
are :func:`~.shapes.task_view`\\s.

An agent token sees and acts on only the tasks its agent may see (it created the
task, holds it, or received its message); any other is 404 like a missing id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...models import TaskStatus
from ...wire import LIMIT_BOUNDS
from ..routes import IdPath
from ..routes.stream import viewer_of
from .common import AgentQuery, CompatCall, SeedActor, answer, json_body, make_compat_router
from .shapes import task_event_view, task_view

router = make_compat_router()
#: ``?agentId=``: whose view of the tasks a read shows (admin; an agent token reads
#: as its own agent).
Viewer = AgentQuery


class SeedTaskReport(SeedActor):
    """``PATCH /api/tasks/{id}/status``: a new status, progress (0-100) with a note,
    a result. ``agentId`` reports (the holder; the creator may close it); with the
    admin token and no ``agentId``, the operator."""

    status: TaskStatus | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    note: str | None = None
    result: str | None = None


class SeedTask(SeedActor):
    """A task to open (``agentId`` or ``from`` opens it; ``meta`` or the seed's
    ``metadata`` are its meta)."""

    title: str
    target: str
    body: str | None = None
    channel: str | None = None
    meta: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    external_url: str | None = None
    priority: str = "normal"
    dedupe_key: str | None = None
    source: str | None = None


@router.get("/api/tasks")
def list_tasks(
    call: CompatCall,
    status: TaskStatus | None = None,
    assignee: Annotated[str | None, Query(pattern=anchored(NAME_PATTERN))] = None,
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


@router.post("/api/tasks", status_code=201)
def create_task(body: Annotated[SeedTask, json_body(SeedTask)], call: CompatCall) -> Response:
    """Open a task and the claimable message that offers it to ``target``: as an
    agent (its token, or ``agentId`` with the admin token), as the operator (the admin
    token without ``agentId``), or as an integration (its token, with
    ``tasks:create``). 201 with the task; 409 if an active task has ``dedupeKey``."""
    caller = call.caller(integrations=True)
    creator: str | None = None
    if caller.integration is not None:
        caller.require_scope("tasks:create")
        if body.agent_id is not None:
            caller.act_as(body.agent_id, "agentId")  # raises: an integration is no agent
    elif not caller.admin or body.agent_id is not None:
        creator = caller.act_as(body.agent_id, "agentId")
    task = call.service.open_task(
        workspace=caller.workspace,
        title=body.title,
        target=body.target,
        creator=creator,
        integration=caller.integration,
        epoch=body.epoch,
        body=body.body,
        channel=body.channel,
        meta=body.meta if body.meta is not None else body.metadata,
        external_url=body.external_url,
        priority=body.priority,
        dedupe_key=body.dedupe_key,
        source=body.source,
    )
    return answer(task_view(task), 201)


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
