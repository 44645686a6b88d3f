"""Workflow run calls (admin): record a run, read it, list runs, write it with a
compare-and-set on its version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models import WorkflowRun
from .. import workflow_run_requests as requests
from .base import _builder

if TYPE_CHECKING:
    from pydantic import TypeAdapter

_LIST: list[TypeAdapter[list[WorkflowRun]]] = []


def _runs(content: bytes) -> list[WorkflowRun]:
    # The adapter is built on first use: pydantic is loaded by then (the models).
    if not _LIST:
        from pydantic import TypeAdapter

        _LIST.append(TypeAdapter(list[WorkflowRun]))
    return _LIST[0].validate_json(content)


_one = WorkflowRun.model_validate_json

create_workflow_run = _builder(requests.create_workflow_run, _one, lambda s: s.create_run)
get_workflow_run = _builder(requests.get_workflow_run, _one, lambda s: s.get_run)
list_workflow_runs = _builder(requests.list_workflow_runs, _runs, lambda s: s.list_runs)
update_workflow_run = _builder(requests.update_workflow_run, _one, lambda s: s.update_run)
