"""Workflow runs: the state a workflow runner keeps in the store (see
:mod:`relaybus.service.workflow_runs`). Admin only: an agent's or an integration's
token gets 403. Their request bodies are here (``relaybus.wire`` holds the rest of the
API's): a client builds them as plain JSON objects
(:mod:`relaybus.client.calls.workflow_runs`).

An update names the ``version`` it read: 409 when the run is at another one (another
runner, or ``cancel``, wrote it since), so two runners never both write a run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import ConfigDict, Field, StrictBool, TypeAdapter
from starlette.responses import Response

from ...bounds import MAX_ID
from ...models import WorkflowRun, WorkflowRunStatus
from ...service.workflow_runs import (
    DEFAULT_RUNS,
    DIGEST_PATTERN,
    MAX_FILE_CHARS,
    MAX_RUNNER_CHARS,
    MAX_RUNS,
    MAX_STATE_DEPTH,
    WORKFLOW_NAME_PATTERN,
)
from ...wire import ID_BOUNDS, Body, NoBool, Text, examples
from ..auth import ApiCall, ApiRequest
from ..problems import responses
from . import make_router, render, render_list

router = make_router(tags=["workflows"])
#: Built now, not on first use (the server builds every model before its routes).
_BUILT = ConfigDict(defer_build=False)
RUN_LIST = TypeAdapter(list[WorkflowRun])

#: ``{run_id}`` in a path.
RunPath = Annotated[
    int, Path(description="The workflow run's id.", examples=[1], json_schema_extra=ID_BOUNDS)
]
WorkflowName = Annotated[
    str,
    Field(pattern=f"^{WORKFLOW_NAME_PATTERN}$", description="The workflow's name (its file's)."),
]
Runner = Annotated[
    str,
    Field(
        pattern=r"^[^\x00]*$",
        min_length=1,
        max_length=MAX_RUNNER_CHARS,
        description="Who runs it (host:pid).",
    ),
]
STATE = (
    f"The runner's document (steps, attempts, task ids, results): a JSON object of at most "
    f"the server's request body limit in bytes, nested at most {MAX_STATE_DEPTH} levels "
    f"deep, with no NUL character in its text; replaced whole."
)


class WorkflowRunCreate(Body):
    """A new run of a workflow file: ``running``, version 1."""

    model_config = _BUILT | examples(
        {
            "name": "review",
            "source": "version: 1\nname: review\nsteps: {}\n",
            "file": "examples/review.yaml",
            "runner": "laptop:4242",
            "state": {"steps": {}},
        }
    )

    name: WorkflowName
    source: Text = Field(
        description="The workflow file's text (at most the server's message body limit)."
    )
    digest: Annotated[str, Field(pattern=f"^{DIGEST_PATTERN}$")] | None = Field(
        default=None, description="SHA-256 of the source, lower-case hex; default computed."
    )
    file: (
        Annotated[str, Field(pattern=r"^[^\x00]*$", min_length=1, max_length=MAX_FILE_CHARS)] | None
    ) = Field(default=None, description="The workflow file's path.")
    runner: Runner | None = None
    state: dict[str, Any] | None = Field(default=None, description=STATE)


class WorkflowRunUpdate(Body):
    """A write of a run the caller read at ``version``; give at least one of status,
    state, runner, heartbeat."""

    model_config = _BUILT | examples(
        {"version": 1, "state": {"steps": {"plan": "done"}}, "heartbeat": True},
        {"version": 2, "status": "done"},
    )

    version: Annotated[int, Field(ge=1, le=MAX_ID), NoBool] = Field(
        description="The version the caller read (409 when the run is at another)."
    )
    status: WorkflowRunStatus | None = Field(
        default=None,
        description="running → done, failed or cancelled; failed or cancelled → running "
        "(resume); a done run is over (409).",
    )
    state: dict[str, Any] | None = Field(default=None, description=STATE)
    runner: Runner | None = None
    heartbeat: StrictBool = Field(default=False, description="Set heartbeat_at to now.")


def _admin(call: ApiRequest, action: str) -> str:
    """The caller's workspace, if the caller is admin (Forbidden otherwise)."""
    caller = call.caller()  # an integration's token: 403
    caller.require_admin(action)
    return caller.workspace


@router.post(
    "/v1/workflows/runs",
    response_model=WorkflowRun,
    status_code=201,
    responses=responses(400, 403, 413),
)
def create_run(body: WorkflowRunCreate, call: ApiCall) -> Response:
    """Record a new run of a workflow (admin): ``running``, version 1;
    ``workflow.started`` in the event log."""
    workspace = _admin(call, "recording a workflow run")
    run = call.service.create_run(
        workspace,
        name=body.name,
        source=body.source,
        digest=body.digest,
        file=body.file,
        runner=body.runner,
        state=body.state,
    )
    return render(run, 201)


@router.get("/v1/workflows/runs", response_model=list[WorkflowRun], responses=responses(400, 403))
def list_runs(
    call: ApiCall,
    name: Annotated[str | None, Query(pattern=f"^{WORKFLOW_NAME_PATTERN}$")] = None,
    status: WorkflowRunStatus | None = None,
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": MAX_RUNS})] = (
        DEFAULT_RUNS
    ),
) -> Response:
    """Workflow runs, newest first (admin): of one workflow, in one status."""
    workspace = _admin(call, "listing workflow runs")
    found = call.service.list_runs(workspace, name=name, status=status, limit=limit)
    return render_list(RUN_LIST, found)


@router.get(
    "/v1/workflows/runs/{run_id:id}", response_model=WorkflowRun, responses=responses(400, 403, 404)
)
def get_run(run_id: RunPath, call: ApiCall) -> Response:
    """One workflow run (admin)."""
    workspace = _admin(call, "reading a workflow run")
    return render(call.service.get_run(workspace, run_id))


@router.patch(
    "/v1/workflows/runs/{run_id:id}",
    response_model=WorkflowRun,
    responses=responses(400, 403, 404, 409, 413),
)
def update_run(run_id: RunPath, body: WorkflowRunUpdate, call: ApiCall) -> Response:
    """Write a run read at ``version`` (admin): the version goes up by one. 409 when it
    is at another version (read it again), or the status cannot go there."""
    workspace = _admin(call, "updating a workflow run")
    run = call.service.update_run(
        workspace,
        run_id,
        version=body.version,
        status=body.status,
        state=body.state,
        runner=body.runner,
        heartbeat=body.heartbeat,
    )
    return render(run)
