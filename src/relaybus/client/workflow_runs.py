# Generated from aio_workflow_runs.py by scripts/unasync.py: do not edit. Edit aio_workflow_runs.py
# (the async source) and run `python scripts/unasync.py`; CI checks they agree.
"""Workflow runs from the SDK: :class:`WorkflowRunsView`, the workspace
operator's view of the runs that workflow runners keep in the store (admin).

>>> run = relay.create_workflow_run("review", source=text, runner="laptop:42")
>>> run = relay.update_workflow_run(run.id, version=run.version, state={...})
>>> relay.update_workflow_run(run.id, version=run.version, status="done")

Every update names the version it read: :class:`~relaybus.errors.Conflict` when
someone else (another runner, ``cancel``) wrote the run since, so two runners never
both write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import WorkflowRun, WorkflowRunStatus
from . import calls
from .view import View


class WorkflowRunsView(View):
    """Workflow runs (see the module docstring): record, read, list, write."""

    def create_workflow_run(
        self,
        name: str,
        *,
        source: str,
        digest: str | None = None,
        file: str | None = None,
        runner: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> WorkflowRun:
        """Record a new run of workflow ``name`` (``running``, version 1) and append
        ``workflow.started``.

        Args:
            source: the workflow file's text.
            digest: its SHA-256 (lower-case hex); default computed from ``source``.
            file: the workflow file's path.
            runner: who runs it (``host:pid``); its heartbeat starts now.
            state: the runner's document (a JSON object).

        Raises:
            InvalidInput: a malformed name, digest, path, runner or state.
            TooLarge: the source or the state is too large.
            Forbidden: over HTTP, a token other than the admin's.
        """
        return self._run(
            calls.create_workflow_run(
                self._workspace,
                name=name,
                source=source,
                digest=digest,
                file=file,
                runner=runner,
                state=state,
            )
        )

    def workflow_run(self, run_id: int) -> WorkflowRun:
        """One run. Raises NotFound, InvalidInput (a malformed id)."""
        return self._run(calls.get_workflow_run(self._workspace, run_id))

    def workflow_runs(
        self,
        *,
        name: str | None = None,
        status: WorkflowRunStatus | str | None = None,
        limit: int = 50,
    ) -> list[WorkflowRun]:
        """Runs, newest first: of workflow ``name``, in ``status``, at most ``limit``
        (1-1000). Raises InvalidInput."""
        return self._run(
            calls.list_workflow_runs(self._workspace, name=name, status=status, limit=limit)
        )

    def update_workflow_run(
        self,
        run_id: int,
        *,
        version: int,
        status: WorkflowRunStatus | str | None = None,
        state: Mapping[str, Any] | None = None,
        runner: str | None = None,
        heartbeat: bool = False,
    ) -> WorkflowRun:
        """Write run ``run_id``, read at ``version``: the version goes up by one;
        ``state`` replaces the document; ``heartbeat`` sets ``heartbeat_at`` to now.
        Leaving ``running`` sets ``finished_at`` (``workflow.finished``); a failed or
        cancelled run goes back to ``running`` to resume (``workflow.started``).

        Raises:
            Conflict: the run is at another version (someone else wrote it: read it
                again), or the status cannot go there (a done run is over).
            NotFound, InvalidInput (also: nothing to update), TooLarge.
        """
        return self._run(
            calls.update_workflow_run(
                self._workspace,
                run_id,
                version=version,
                status=status,
                state=state,
                runner=runner,
                heartbeat=heartbeat,
            )
        )
