"""A workflow file, parsed: :class:`Workflow` (its agents and its steps).

:func:`relaybus.workflows.load.load` reads a YAML file into these (checked against the
JSON Schema ``schema.json`` shipped beside this module, then for meaning: unknown
agents, unknown or cyclic ``depends_on``, references to unknown steps), with the line
each part starts on, so that the runner's errors can point into the file too.

Durations are seconds (the file may say ``90``, ``"90s"``, ``"5m"`` or ``"1h"``).
The format's reference is docs/workflows.md; the idea (agents, steps, ``depends_on``,
verification, idle nudges) follows agent-relay's YAML workflows (seed 004).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Defaults of the file's ``defaults:`` block (seconds, counts).
STEP_TIMEOUT = 600.0
STEP_RETRIES = 0
NUDGE_AFTER = 120.0
RETRY_AFTER = 120.0
REVIEW_ROUNDS = 3
APPROVE_TEXT = "APPROVED"


@dataclass(frozen=True)
class AgentSpec:
    """An agent the runner spawns (``agents.NAME``): a preset CLI (``cli``: claude,
    codex, gemini, opencode) or a ``command`` (argv), with its model, routing labels
    (tags, capabilities, channels), folder (relative to the workflow file's), restart
    policy and extra environment. A preset also takes ``args`` (added after its own)
    and an ``approval`` mode (open, guarded, read-only)."""

    name: str
    cli: str | None = None
    command: tuple[str, ...] = ()
    model: str | None = None
    args: tuple[str, ...] = ()
    approval: str | None = None
    tags: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    headless: bool = False
    cwd: str | None = None
    restart: str = "no"
    env: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Verify:
    """How a step's result is checked before the step counts as done (all given must
    pass): the result ``contains`` a text; a shell ``command`` exits 0 (run in the
    workflow file's folder, with ``RELAYBUS_RESULT`` holding the result); a ``file``
    (relative to that folder) exists."""

    contains: str | None = None
    command: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class Review:
    """A review loop on a reviewing step: while its result does not contain
    ``approve``, step ``of`` runs again (its task can quote the review as
    ``{{ steps.<this step>.result }}``), then this step again, ``max_rounds`` times
    at most; past that the reviewing step fails."""

    of: str
    approve: str = APPROVE_TEXT
    max_rounds: int = REVIEW_ROUNDS


@dataclass(frozen=True)
class StepSpec:
    """A step (``steps.NAME``): a task for the named ``agent``, or for any agent with
    ``capability``; ``task`` is its text, a template that may quote earlier results as
    ``{{ steps.OTHER.result }}``. It starts once every step in ``depends_on`` is done;
    a failed or timed-out attempt is tried again ``retries`` times."""

    name: str
    task: str
    agent: str | None = None
    capability: str | None = None
    depends_on: tuple[str, ...] = ()
    timeout: float = STEP_TIMEOUT
    retries: int = STEP_RETRIES
    verify: Verify | None = None
    review: Review | None = None
    nudge_after: float | None = None
    line: int = 0


@dataclass(frozen=True)
class Workflow:
    """A parsed workflow file: ``agents`` and ``steps`` by name, in file order.

    ``nudge_after``: seconds an agent may sit idle on a step before it is nudged;
    ``retry_after``: seconds after the nudge before the step is released and tried
    by another agent. ``path`` is the file it came from, ``source`` its text.
    """

    name: str
    steps: Mapping[str, StepSpec]
    agents: Mapping[str, AgentSpec] = field(default_factory=dict)
    description: str | None = None
    nudge_after: float = NUDGE_AFTER
    retry_after: float = RETRY_AFTER
    path: Path | None = None
    source: str = ""

    def order(self) -> list[str]:
        """The step names in an order that runs each after its ``depends_on``
        (file order where free). The loader has refused cycles."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for before in self.steps[name].depends_on:
                visit(before)
            done.append(name)

        for name in self.steps:
            visit(name)
        return done
