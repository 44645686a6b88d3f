"""Tasks: list, get, history, and the claim lifecycle (claim, renew, release, update).

An agent token sees and acts on only the tasks its agent may see (the service's
visibility rule: it created the task, holds it, or received its message); any
other task is 404 exactly like a missing id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...errors import Forbidden
from ...models import Task, TaskEvent, TaskStatus
from ...service.integrations import integration_sender
from ...wire import (
    ID_BOUNDS,
    LIMIT_BOUNDS,
    TASK_EVENT_LIST,
    TASK_LIST,
    LeaseBody,
    ReleaseBody,
    TaskCreate,
    TaskUpdate,
)
from ..auth import ApiCall, ApiRequest, Caller, Epoch
from ..problems import responses
from . import IdPath, make_router, render, render_list
from .stream import viewer_of

router = make_router(tags=["tasks"])
#: ``?agent=``: whose view of the tasks a read shows.
Viewer = Annotated[
    str | None,
    Query(
        pattern=anchored(NAME_PATTERN),
        description="Read as this agent: only the tasks it may see (admin; an agent "
        "token always reads as its own agent and may name only itself).",
    ),
]


def task_viewer(call: ApiRequest, agent: str | None) -> tuple[Caller, str | None]:
    """The caller of a task read and whose view it gets: an agent's own, an admin's
    choice (``?agent=``, else everything), or an integration's (with ``tasks:read``:
    the tasks it raised, as their creator ``integration:NAME``).

    Raises:
        Forbidden: an agent token naming another agent; an integration without
            ``tasks:read`` or naming an agent.
    """
    caller = call.caller(integrations=True)
    if caller.integration is None:
        return caller, viewer_of(caller, agent)
    caller.require_scope("tasks:read")
    if agent is not None:
        raise Forbidden(f"integration {caller.integration!r} reads its own tasks only")
    return caller, integration_sender(caller.integration)


@router.post(
    "/v1/tasks", response_model=Task, status_code=201, responses=responses(400, 404, 409, 413)
)
def create_task(body: TaskCreate, call: ApiCall, epoch: Epoch = None) -> Response:
    """Open a task and the claimable message that offers it to ``target``: as an agent
    (its token, or ``agent_id`` with the admin token), as the operator (the admin token
    without ``agent_id``), or as an integration (its token, with ``tasks:create``;
    only to its allowed targets and channels)."""
    caller = call.caller(integrations=True)
    creator: str | None = None
    if caller.integration is not None:
        caller.require_scope("tasks:create")
        if body.agent_id is not None:
            caller.act_as(body.agent_id)  # raises: an integration is no agent
    elif not caller.admin or body.agent_id is not None:
        creator = caller.act_as(body.agent_id)
    task = call.service.open_task(
        workspace=caller.workspace,
        title=body.title,
        target=body.target,
        creator=creator,
        integration=caller.integration,
        epoch=epoch,
        body=body.body,
        channel=body.channel,
        meta=body.meta,
        external_url=body.external_url,
        priority=body.priority,
        dedupe_key=body.dedupe_key,
        source=body.source,
    )
    return render(task, 201)


@router.get("/v1/tasks", response_model=list[Task], responses=responses(400))
def list_tasks(
    call: ApiCall,
    status: TaskStatus | None = None,
    assignee: Annotated[str | None, Query(pattern=anchored(NAME_PATTERN))] = None,
    before: Annotated[
        int | None, Query(json_schema_extra=ID_BOUNDS, description="Only older ids (a page).")
    ] = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 100,
    agent: Viewer = None,
) -> Response:
    """Tasks of the workspace, newest first (an agent token: only those it may see; an
    integration's, with ``tasks:read``: only those it raised); ``before``: the next page."""
    caller, viewer = task_viewer(call, agent)
    found = call.service.list_tasks(
        workspace=caller.workspace,
        status=status,
        assignee=assignee,
        before=before,
        limit=limit,
        viewer=viewer,
    )
    return render_list(TASK_LIST, found)


@router.get("/v1/tasks/{task_id:id}", response_model=Task, responses=responses(400, 404))
def get_task(task_id: IdPath, call: ApiCall, agent: Viewer = None) -> Response:
    """One task (an agent token: one it may see; any other is 404, like a missing id)."""
    caller, viewer = task_viewer(call, agent)
    return render(call.service.get_task(task_id, workspace=caller.workspace, viewer=viewer))


@router.get(
    "/v1/tasks/{task_id:id}/history",
    response_model=list[TaskEvent],
    responses=responses(400, 404),
)
def task_history(task_id: IdPath, call: ApiCall, agent: Viewer = None) -> Response:
    """The task's history, oldest first (an agent token: of a task it may see)."""
    caller, viewer = task_viewer(call, agent)
    found = call.service.task_history(task_id, workspace=caller.workspace, viewer=viewer)
    return render_list(TASK_EVENT_LIST, found)


@router.post(
    "/v1/tasks/{task_id:id}/claim", response_model=Task, responses=responses(400, 404, 409, 413)
)
def claim(task_id: IdPath, body: LeaseBody, call: ApiCall, epoch: Epoch = None) -> Response:
    """Claim the task (atomic: of racing claimers exactly one wins); claiming a task
    one holds renews it. Only a recipient of the task's message may claim it; a task
    the agent may not see is 404, like a missing id."""
    return _hold(task_id, body, call, epoch, renew=False)


@router.post(
    "/v1/tasks/{task_id:id}/renew", response_model=Task, responses=responses(400, 404, 409, 413)
)
def renew(task_id: IdPath, body: LeaseBody, call: ApiCall, epoch: Epoch = None) -> Response:
    """Extend the lease of a task the agent holds."""
    return _hold(task_id, body, call, epoch, renew=True)


def _hold(
    task_id: int, body: LeaseBody, call: ApiRequest, epoch: int | None, *, renew: bool
) -> Response:
    # Claim or renew: the same request (the lease in the body), two service operations.
    caller = call.caller()
    hold = call.service.renew if renew else call.service.claim
    task = hold(
        task_id,
        caller.act_as(body.agent_id),
        workspace=caller.workspace,
        epoch=epoch,
        lease=body.lease,
    )
    return render(task)


@router.post(
    "/v1/tasks/{task_id:id}/release", response_model=Task, responses=responses(400, 404, 409, 413)
)
def release(task_id: IdPath, body: ReleaseBody, call: ApiCall, epoch: Epoch = None) -> Response:
    """Give a held task back: it is open again. The admin token without ``agent_id`` is
    the operator taking the lease from whoever holds it ("released by operator")."""
    caller = call.caller()
    agent_id = body.agent_id if caller.admin else caller.act_as(body.agent_id)
    task = call.service.release(task_id, agent_id, workspace=caller.workspace, epoch=epoch)
    return render(task)


@router.patch(
    "/v1/tasks/{task_id:id}", response_model=Task, responses=responses(400, 404, 409, 413)
)
def update_task(task_id: IdPath, body: TaskUpdate, call: ApiCall, epoch: Epoch = None) -> Response:
    """Report a status, progress, a note or a result (the holder; the creator may close it)."""
    caller = call.caller()
    # Admin without agent_id is the operator; an agent token always acts as its agent.
    agent_id = body.agent_id if caller.admin else caller.act_as(body.agent_id)
    task = call.service.update_task(
        task_id,
        agent_id,
        workspace=caller.workspace,
        epoch=epoch,
        status=body.status,
        progress=body.progress,
        note=body.note,
        result=body.result,
    )
    return render(task)
