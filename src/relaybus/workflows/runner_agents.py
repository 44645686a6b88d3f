"""The agents a workflow file lists under ``agents:``: spawned when a run starts (or
resumes) through the warm local relay's supervisor (``relay.spawn``), skipping those
already running, and released when the run ends (unless ``--keep-agents``).

A headless preset (``cli:`` with ``headless: true``, e.g. ``claude -p``) runs once with
its task as the prompt, so it is not started with the run: it is registered then (its
steps' tasks are addressed to it), and spawned for each of its tasks, with the task's
text and id; the supervisor finishes the task from its exit (:func:`one_shot`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Conflict, InvalidInput, NotFound, RelayError
from ..models import AgentStatus, SpawnedAgent, SpawnedState

if TYPE_CHECKING:
    from ..client import Relay
    from .spec import AgentSpec, Workflow

#: Seconds a released agent gets to stop before it is killed.
RELEASE_TIMEOUT = 10.0


def running(relay: Relay, names: set[str]) -> set[str]:
    """Which of ``names`` run already: spawned and running (or restarting), or
    registered and not offline (an agent started by hand)."""
    found = {
        agent.name
        for agent in relay.spawned()
        if agent.state in (SpawnedState.RUNNING, SpawnedState.RESTARTING)
    }
    for name in names - found:
        try:
            if relay.get_agent(name).status != AgentStatus.OFFLINE:
                found.add(name)
        except NotFound:
            pass
    return found & names


def one_shot(spec: AgentSpec) -> bool:
    """Whether ``spec`` runs once per task: a headless preset CLI, whose task is its
    prompt (a headless ``command`` is a program of its own that may serve many)."""
    return spec.headless and spec.cli is not None


def register(relay: Relay, spec: AgentSpec) -> None:
    """Register a :func:`one_shot` agent (no process yet) so that its steps' tasks can
    be addressed to it; each spawn for a task registers it again, running."""
    relay.register(
        spec.name,
        tags=spec.tags,
        capabilities=spec.capabilities,
        channels=spec.channels,
        pid=None,
        tool="workflow",
    ).update(status="offline")


def spawn(
    relay: Relay,
    spec: AgentSpec,
    folder: Path,
    *,
    task: str | None = None,
    task_id: int | None = None,
) -> SpawnedAgent:
    """Spawn one agent of the file, in its ``cwd`` (relative to ``folder``, the
    workflow file's), with this process's environment plus the file's ``env``.

    Raises:
        InvalidInput: a preset with ``args`` (the spawn SDK takes none).
        RelayError: the supervisor refused (a preset CLI missing, a bad command).
    """
    if spec.args:
        # relay.spawn takes a preset's settings, not extra arguments (issue 19's SDK).
        raise InvalidInput(
            f"agent {spec.name}: args for a preset CLI cannot be passed to spawn yet; "
            "give the whole command instead (command: [...])"
        )
    cwd = (folder / spec.cwd) if spec.cwd else folder
    return relay.spawn(
        spec.name,
        cli=spec.cli,
        command=list(spec.command) or None,
        model=spec.model,
        cwd=str(cwd.resolve()),
        tags=spec.tags,
        capabilities=spec.capabilities,
        channels=spec.channels,
        restart=spec.restart,
        headless=spec.headless,
        approval=spec.approval,
        env=dict(spec.env) or None,
        task=task,
        task_id=task_id,
    )


def to_spawn(relay: Relay, workflow: Workflow) -> list[AgentSpec]:
    """The agents of ``workflow`` to start with the run: those not running yet, in the
    file's order (:func:`one_shot` ones are spawned per task instead)."""
    if not workflow.agents:
        return []
    skip = running(relay, set(workflow.agents))
    return [
        spec for name, spec in workflow.agents.items() if name not in skip and not one_shot(spec)
    ]


def release(relay: Relay, name: str, reason: str) -> bool:
    """Release a spawned agent; ``False`` when it was gone already."""
    try:
        relay.release(name, reason=reason, timeout=RELEASE_TIMEOUT)
    except (NotFound, Conflict):
        return False
    except RelayError:
        return False
    return True
