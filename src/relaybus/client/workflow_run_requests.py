"""The HTTP requests of the workflow run operations (admin), described once (as
:mod:`relaybus.client.operations` describes the rest), with the arguments of the
service's methods (:mod:`relaybus.service.workflow_runs`). Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .request import Request, json_body, segment

RUNS = "/v1/workflows/runs"


def create_workflow_run(
    workspace: str,
    *,
    name: str,
    source: str,
    digest: str | None = None,
    file: str | None = None,
    runner: str | None = None,
    state: Mapping[str, Any] | None = None,
) -> Request:
    """``POST /v1/workflows/runs`` (admin)."""
    body = json_body(
        name=name,
        source=source,
        digest=digest,
        file=file,
        runner=runner,
        state=dict(state) if isinstance(state, Mapping) else state,
    )
    return Request("POST", RUNS, workspace=workspace, body=body)


def get_workflow_run(workspace: str, run_id: int) -> Request:
    """``GET /v1/workflows/runs/{id}`` (admin)."""
    return Request("GET", f"{RUNS}/{segment(run_id)}", workspace=workspace)


def list_workflow_runs(
    workspace: str,
    *,
    name: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> Request:
    """``GET /v1/workflows/runs`` (admin), newest first."""
    params = {"name": name, "status": status, "limit": limit}
    return Request("GET", RUNS, workspace=workspace, params=params)


def update_workflow_run(
    workspace: str,
    run_id: int,
    *,
    version: int,
    status: str | None = None,
    state: Mapping[str, Any] | None = None,
    runner: str | None = None,
    heartbeat: bool = False,
) -> Request:
    """``PATCH /v1/workflows/runs/{id}`` (admin): sent once (409 on a stale version)."""
    body = json_body(
        version=version,
        status=status,
        state=dict(state) if isinstance(state, Mapping) else state,
        runner=runner,
        heartbeat=heartbeat or None,
    )
    return Request("PATCH", f"{RUNS}/{segment(run_id)}", workspace=workspace, body=body)
