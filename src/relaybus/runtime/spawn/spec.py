"""What to spawn, checked: :class:`SpawnSpec` (a ``POST /v1/spawned`` body) made
into the argv that runs (a preset's or the one given; in a PTY, under
``relaybus run``) and the program's environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InvalidInput
from ...models import Approval, RestartPolicy, parse_choice
from ..pty.child import resolve

#: The caller's variables a spawned program must not inherit: they name another
#: agent, server, token or store than the one it is spawned into
#: (see :data:`relaybus.client.warm.CALLER_VARIABLES`).
DROPPED = (
    "RELAYBUS_AGENT",
    "RELAYBUS_EPOCH",
    "RELAYBUS_URL",
    "RELAYBUS_TOKEN",
    "RELAYBUS_METRICS_TOKEN",
    "RELAYBUS_WORKSPACE",
    "RELAYBUS_SESSION",
    "RELAYBUS_DATABASE",
    "RELAYBUS_DIR",
    "RELAYBUS_LABEL",
    "RELAYBUS_TAGS",
    "RELAYBUS_CAPS",
    "RELAYBUS_CHANNELS",
    "RELAYBUS_RUNTIME",
    "RELAYBUS_TOOL",
)
#: The default quiet window of the ``idle`` event, seconds.
IDLE_SECONDS = 0.75


@dataclass(kw_only=True)
class SpawnSpec:
    """One spawn request (see ``POST /v1/spawned`` in docs/spawning.md)."""

    name: str
    cli: str | None = None
    command: Sequence[str] | None = None
    model: str | None = None
    task: str | None = None
    cwd: str | None = None
    tags: Sequence[str] = ()
    capabilities: Sequence[str] = ()
    channels: Sequence[str] = ()
    restart: RestartPolicy | str = RestartPolicy.NO
    headless: bool = False
    approval: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)
    task_id: int | None = None
    idle_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class SpawnPlan:
    """A checked :class:`SpawnSpec`: what runs (``argv``, ``argv[0]`` absolute), as
    which command the agent shows (``command``: the program's own argv), where and
    with what environment, and whether the task is still to be typed in."""

    spec: SpawnSpec
    restart: RestartPolicy
    command: list[str]
    argv: list[str]
    cwd: str
    env: dict[str, str]
    type_task: bool
    idle_seconds: float


def plan(spec: SpawnSpec, *, workspace: str, relay_dir: Path) -> SpawnPlan:
    """Check ``spec`` and say how to run it.

    Raises:
        InvalidInput: neither or both of ``cli`` and ``command``, an unknown CLI, an
            empty command or one not found, a ``cwd`` that is not a folder, an unknown
            restart policy or approval mode, a quiet window not above 0.
    """
    if (spec.cli is None) == (spec.command is None):
        raise InvalidInput("give exactly one of cli (a preset) and command (an argv)")
    restart = parse_choice(RestartPolicy, "restart policy", spec.restart)
    if spec.approval is not None:
        parse_choice(Approval, "approval mode", spec.approval)
    idle = IDLE_SECONDS if spec.idle_seconds is None else float(spec.idle_seconds)
    if not idle > 0:
        raise InvalidInput(f"idle_seconds must be above 0, not {spec.idle_seconds}")
    cwd = os.path.abspath(spec.cwd or os.getcwd())
    if not os.path.isdir(cwd):
        raise InvalidInput(f"cwd {cwd} is not a folder", cwd=cwd)
    env = child_env(spec, workspace=workspace, relay_dir=relay_dir)
    if spec.cli is not None:
        from ...presets import build_command

        command = build_command(
            spec.cli,
            model=spec.model,
            task=spec.task,
            headless=spec.headless,
            approval=spec.approval,
        )
    else:
        command = [str(part) for part in spec.command or ()]
    if not command or not command[0]:
        raise InvalidInput("the command is empty")
    program = resolve(command[0], env, cwd)
    # A preset always takes the task as its prompt argument (as its own argument, or as
    # --prompt=TASK when the task starts with "-"); a plain command has it typed in.
    type_task = bool(spec.task) and not spec.headless and spec.cli is None
    if spec.headless:
        argv = [program, *command[1:]]
    else:
        argv = [sys.executable, "-m", "relaybus", "run", "--name", spec.name]
        for option, values in (
            ("--tag", spec.tags),
            ("--cap", spec.capabilities),
            ("--channel", spec.channels),
        ):
            for value in values:
                argv += [option, value]
        if spec.approval is not None:
            argv += ["--approval", spec.approval]
        argv += ["--", program, *command[1:]]
    return SpawnPlan(
        spec=spec,
        restart=restart,
        command=command,
        argv=argv,
        cwd=cwd,
        env=env,
        type_task=type_task,
        idle_seconds=idle,
    )


def child_env(spec: SpawnSpec, *, workspace: str, relay_dir: Path) -> dict[str, str]:
    """The program's environment: the request's (the caller's own, as the SDK and the
    CLI send it; else the warm relay's), without the caller's relay variables, naming
    the relay folder, the agent and its workspace (``RELAYBUS_DIR``,
    ``RELAYBUS_AGENT``, ``RELAYBUS_WORKSPACE``); headless, the task and its id
    (``RELAYBUS_TASK``, ``RELAYBUS_TASK_ID``) when given."""
    env = dict(os.environ if spec.env is None else spec.env)
    for name in DROPPED:
        env.pop(name, None)
    env["RELAYBUS_DIR"] = str(relay_dir)
    env["RELAYBUS_AGENT"] = spec.name
    env["RELAYBUS_WORKSPACE"] = workspace
    env.setdefault("TERM", "xterm-256color")
    if spec.task is not None:
        env["RELAYBUS_TASK"] = spec.task
    if spec.task_id is not None:
        env["RELAYBUS_TASK_ID"] = str(spec.task_id)
    return env
