"""Where the runner keeps a workflow run: the relay's run store, through the SDK
(``create_workflow_run``, ``workflow_run``, ``workflow_runs``,
``update_workflow_run``). Every write names the version it read; the store refuses a
stale one (Conflict), so two runners never both hold a run.

Also who holds a run: :func:`runner_id` (``host:pid``) and :func:`holder_alive`
(a fresh heartbeat, and on this host a live pid).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, NotFound
from ..models import WorkflowRun, WorkflowRunStatus

if TYPE_CHECKING:
    from ..client import Relay
    from .spec import Workflow

#: Seconds between two heartbeats of a running runner.
HEARTBEAT_SECONDS = 5.0
#: A heartbeat older than this (seconds) says the runner is gone.
STALE_SECONDS = 30.0


def runner_id() -> str:
    """Who this process is, as a run's ``runner``: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(run: WorkflowRun, *, now: float | None = None) -> bool:
    """Whether the runner holding ``run`` still runs: its heartbeat is fresher than
    :data:`STALE_SECONDS` and, when it ran on this host, its pid is alive."""
    if run.status != WorkflowRunStatus.RUNNING or not run.runner:
        return False
    host, _, pid = run.runner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process with that pid: go by the heartbeat
    if run.heartbeat_at is None:
        return False
    now = time.time() if now is None else now
    return now - run.heartbeat_at.timestamp() < STALE_SECONDS


def digest(source: str) -> str:
    """The sha256 of a workflow file's text (hex): tells a changed file apart."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class RunStore:
    """The run store as the runner uses it; the one place that knows the SDK's
    workflow-run calls."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def create(self, workflow: Workflow, state: Mapping[str, Any]) -> WorkflowRun:
        """A new run of ``workflow``, held by this process."""
        return self.relay.create_workflow_run(
            name=workflow.name,
            file=str(workflow.path) if workflow.path is not None else None,
            digest=digest(workflow.source),
            source=workflow.source,
            runner=runner_id(),
            state=dict(state),
        )

    def get(self, run_id: int) -> WorkflowRun:
        """Raises NotFound."""
        return self.relay.workflow_run(run_id)

    def latest(self, name: str) -> WorkflowRun:
        """The newest run of the workflow ``name``. Raises NotFound when it never ran."""
        found = self.relay.workflow_runs(name=name, limit=1)
        if not found:
            raise NotFound(f"workflow {name} has no runs yet (relaybus workflow run FILE)")
        return found[0]

    def find(self, ref: str, load: Any) -> WorkflowRun:
        """The run ``ref`` names: a run id, or a workflow file (its newest run);
        ``load(path)`` parses a file.

        Raises:
            NotFound: no such run. InvalidInput: neither a run id nor a file.
        """
        if ref.isdigit():
            return self.get(int(ref))
        if not os.path.exists(ref):
            raise InvalidInput(f"{ref} is neither a run id nor a workflow file")
        return self.latest(load(ref).name)

    def update(
        self,
        run: WorkflowRun,
        *,
        status: WorkflowRunStatus | None = None,
        state: Mapping[str, Any] | None = None,
        runner: str | None = None,
        heartbeat: bool = False,
    ) -> WorkflowRun:
        """Write ``run`` at the version it was read. Raises Conflict (someone else
        wrote it since: a cancel, a resume)."""
        return self.relay.update_workflow_run(
            run.id,
            version=run.version,
            status=status,
            state=dict(state) if state is not None else None,
            runner=runner,
            heartbeat=heartbeat,
        )
