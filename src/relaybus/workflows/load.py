"""Reading a workflow file: :func:`load` (a path) and :func:`loads` (its text) give a
:class:`~relaybus.workflows.spec.Workflow`, or raise :class:`WorkflowError` listing
every problem of the file, each with its line.

The checks, in one pass (:mod:`.load_yaml`, :mod:`.load_checks`):

- YAML that reads (a key given twice is refused at the line of the second);
- the JSON Schema ``schema.json`` shipped beside this module (Draft 2020-12, printed
  in docs/workflows.md): keys, types, names, durations, ``version: 1``, a step with
  exactly one of ``agent`` and ``capability``, an agent with exactly one of ``cli``
  and ``command``;
- meaning: the steps that ``depends_on`` and ``review.of`` name exist and are not
  the step itself, steps do not wait for each other in a cycle (the error names
  it), ``{{ ... }}`` in a task is one of the template's three references and names
  an existing step, durations are more than 0 and at most 30 days.

A step may name an agent that ``agents:`` does not define (one started by hand, or
by another workflow): the runner waits for it to register. A reviewing step waits
for the step it reviews: ``review.of`` is added to its ``depends_on``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .load_checks import did_you_mean, meaning_problems, parse_duration, schema, schema_problems
from .load_yaml import Located, WorkflowProblem, read
from .spec import (
    APPROVE_TEXT,
    NUDGE_AFTER,
    RETRY_AFTER,
    REVIEW_ROUNDS,
    STEP_RETRIES,
    STEP_TIMEOUT,
    AgentSpec,
    Review,
    StepSpec,
    Verify,
    Workflow,
)

__all__ = [
    "MAX_CHARS", "WorkflowProblem", "WorkflowError", "load", "loads", "parse_duration", "problems",
    "schema", "warnings",
]  # fmt: skip

#: Largest workflow file read (characters): 1 MiB of ASCII.
MAX_CHARS = 1 << 20
#: How :func:`loads` names text that came without a path.
NO_FILE = "<workflow>"


class WorkflowError(InvalidInput):
    """A workflow file that cannot be run. The message is ``FILE:LINE: reason`` of
    the first problem (``(and N more problems)`` after it when there are more);
    :attr:`errors` lists every problem (:class:`WorkflowProblem`: ``line``, ``reason``),
    by line, and ``details["errors"]`` the same as JSON objects."""

    def __init__(self, file: str, errors: Sequence[WorkflowProblem]) -> None:
        self.file = file
        self.errors = sorted(set(errors))
        more = len(self.errors) - 1
        message = self.errors[0].format(file)
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(
            message,
            file=file,
            errors=[{"line": p.line, "reason": p.reason} for p in self.errors],
        )

    def lines(self) -> list[str]:
        """Every problem as ``FILE:LINE: reason``, by line."""
        return [p.format(self.file) for p in self.errors]


def load(path: str | os.PathLike[str]) -> Workflow:
    """The workflow in the file at ``path`` (UTF-8 YAML).

    Raises:
        WorkflowError: the file cannot be read, is not YAML, or breaks the schema
            or the checks of meaning (every problem, with its line).
    """
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read(MAX_CHARS + 1)
    except FileNotFoundError:
        raise WorkflowError(file, [WorkflowProblem(0, "no such file")]) from None
    except IsADirectoryError:
        raise WorkflowError(
            file, [WorkflowProblem(0, "is a folder, not a workflow file")]
        ) from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise WorkflowError(file, [WorkflowProblem(0, reason)]) from None
    except OSError as exc:
        raise WorkflowError(file, [WorkflowProblem(0, f"cannot be read: {exc.strerror}")]) from None
    return loads(text, path=file)


def loads(text: str, path: str | os.PathLike[str] | None = None) -> Workflow:
    """The workflow in ``text``; ``path`` (the file it came from, if any) names it in
    errors and becomes :attr:`Workflow.path` (relative folders start at its folder).

    Raises:
        WorkflowError: as :func:`load`.
    """
    file = NO_FILE if path is None else os.fspath(path)
    found, found_problems = problems(text)
    if found_problems:
        raise WorkflowError(file, found_problems)
    return _workflow(found, text, None if path is None else Path(path))


def problems(text: str) -> tuple[Located, list[WorkflowProblem]]:
    """``text`` read (:class:`~.load_yaml.Located`: its value and the line of each
    part) and every problem of it (none: it loads), by line."""
    if len(text) > MAX_CHARS:
        return Located(), [WorkflowProblem(0, f"is larger than {MAX_CHARS} characters")]
    found = read(text)
    if found.data is None:  # nothing read: empty, or YAML that does not read
        reason = "is empty: a workflow is a mapping with version, name and steps"
        return found, sorted(found.problems) or [WorkflowProblem(0, reason)]
    found_problems = found.problems + schema_problems(found) + meaning_problems(found)
    return found, sorted(set(found_problems))


def warnings(workflow: Workflow) -> list[WorkflowProblem]:
    """What is allowed but likely a mistake, at the step's line: a step's ``agent``
    that ``agents:`` does not define while it defines one of a close name (a typo
    would leave the step waiting for an agent that never registers)."""
    found = []
    for step in workflow.steps.values():
        if step.agent is None or step.agent in workflow.agents:
            continue
        hint = did_you_mean(step.agent, list(workflow.agents))
        if hint:
            reason = (
                f"steps.{step.name}.agent {step.agent!r} is not one of agents:{hint}; "
                "the runner will wait for an agent of that name to register"
            )
            found.append(WorkflowProblem(step.line, reason))
    return found


def _workflow(found: Located, text: str, path: Path | None) -> Workflow:
    """The checked value ``found.data`` as a :class:`Workflow`."""
    data: dict[str, Any] = found.data
    defaults: dict[str, Any] = data.get("defaults", {})
    timeout = _seconds(defaults, "timeout", STEP_TIMEOUT)
    retries: int = defaults.get("retries", STEP_RETRIES)
    agents = {
        name: _agent(name, spec, found.line(("agents", name)))
        for name, spec in data.get("agents", {}).items()
    }
    steps = {
        name: _step(name, spec, found.line(("steps", name)), timeout, retries)
        for name, spec in data["steps"].items()
    }
    return Workflow(
        name=data["name"],
        steps=steps,
        agents=agents,
        description=data.get("description"),
        nudge_after=_seconds(defaults, "nudge_after", NUDGE_AFTER),
        retry_after=_seconds(defaults, "retry_after", RETRY_AFTER),
        path=path,
        source=text,
    )


def _seconds(spec: dict[str, Any], key: str, default: float) -> float:
    return parse_duration(spec[key]) if key in spec else default


def _agent(name: str, spec: dict[str, Any], line: int) -> AgentSpec:
    command = spec.get("command", ())
    return AgentSpec(
        name=name,
        cli=spec.get("cli"),
        command=tuple(shlex.split(command) if isinstance(command, str) else command),
        model=spec.get("model"),
        args=tuple(spec.get("args", ())),
        approval=spec.get("approval"),
        tags=tuple(spec.get("tags", ())),
        capabilities=tuple(spec.get("capabilities", ())),
        channels=tuple(spec.get("channels", ())),
        headless=spec.get("headless", False),
        cwd=spec.get("cwd"),
        restart=spec.get("restart", "no"),
        env=dict(spec.get("env", {})),
        line=line,
    )


def _step(name: str, spec: dict[str, Any], line: int, timeout: float, retries: int) -> StepSpec:
    depends_on = tuple(spec.get("depends_on", ()))
    review = None
    if "review" in spec:
        given = spec["review"]
        review = Review(
            of=given["of"],
            approve=given.get("approve", APPROVE_TEXT),
            max_rounds=given.get("max_rounds", REVIEW_ROUNDS),
        )
        if review.of not in depends_on:
            depends_on += (review.of,)
    verify = None
    if "verify" in spec:
        given = spec["verify"]
        verify = Verify(
            contains=given.get("contains"), command=given.get("command"), file=given.get("file")
        )
    nudge = spec.get("nudge_after")
    return StepSpec(
        name=name,
        task=spec["task"],
        agent=spec.get("agent"),
        capability=spec.get("capability"),
        depends_on=depends_on,
        timeout=_seconds(spec, "timeout", timeout),
        retries=spec.get("retries", retries),
        verify=verify,
        review=review,
        nudge_after=None if nudge is None else parse_duration(nudge),
        line=line,
    )
