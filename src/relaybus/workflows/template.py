"""A step's task text: a template quoting earlier results and the run.

Three references, each inside ``{{ }}`` with or without spaces, and nothing else (no
expressions, filters or loops: this is not Jinja):

- ``{{ steps.NAME.result }}``: step NAME's result, or empty text while it has none
  (a review loop's implementing step quotes its reviewer's result this way);
- ``{{ workflow.name }}``: the workflow's name;
- ``{{ run.id }}``: the run's id.

Anything else in ``{{ }}`` is refused when the file is loaded
(:func:`relaybus.workflows.load.load`, with its line), so :func:`render` only sees
these three.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidInput
from .spec import Workflow

#: One ``{{ ... }}``: what is inside, blanks around it dropped.
PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
#: ``steps.NAME.result`` (NAME as the schema's step names).
STEP_RESULT = re.compile(r"steps\.([A-Za-z0-9][A-Za-z0-9_-]*)\.result")
WORKFLOW_NAME = "workflow.name"
RUN_ID = "run.id"


@dataclass(frozen=True)
class Placeholder:
    """One ``{{ ... }}`` of a template: its ``text`` (as written, braces included),
    the ``expression`` inside, the step it quotes (``step``, for
    ``steps.NAME.result``), whether it is one of the three references (``known``),
    and where it starts (``offset``, characters into the template)."""

    text: str
    expression: str
    step: str | None
    known: bool
    offset: int


def placeholders(template: str) -> list[Placeholder]:
    """Every ``{{ ... }}`` of ``template``, in order."""
    found = []
    for match in PLACEHOLDER.finditer(template):
        expression = match.group(1)
        step = STEP_RESULT.fullmatch(expression)
        known = step is not None or expression in (WORKFLOW_NAME, RUN_ID)
        name = step.group(1) if step is not None else None
        found.append(Placeholder(match.group(0), expression, name, known, match.start()))
    return found


def references(template: str) -> list[str]:
    """The step names ``template`` quotes (``{{ steps.NAME.result }}``), each once, in
    order."""
    names = [p.step for p in placeholders(template) if p.step is not None]
    return list(dict.fromkeys(names))


def render(
    template: str,
    results: Mapping[str, str | None],
    *,
    workflow: str | Workflow,
    run_id: int | str,
) -> str:
    """``template`` with its references replaced: ``{{ steps.NAME.result }}`` by
    ``results[NAME]`` (empty text when it is missing or ``None``), ``{{ workflow.name
    }}`` by the workflow's name (``workflow``: the name or the :class:`Workflow`),
    ``{{ run.id }}`` by ``run_id``. Replaced text is not read again: a result that
    itself contains ``{{ ... }}`` stays as it is.

    Raises:
        InvalidInput: the template has a ``{{ ... }}`` that is none of the three (a
            loaded workflow never has: the loader refuses it).
    """
    name = workflow if isinstance(workflow, str) else workflow.name

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        step = STEP_RESULT.fullmatch(expression)
        if step is not None:
            return results.get(step.group(1)) or ""
        if expression == WORKFLOW_NAME:
            return name
        if expression == RUN_ID:
            return str(run_id)
        raise InvalidInput(
            f"unknown template reference {match.group(0)}: use {{{{ steps.NAME.result }}}}, "
            "{{ workflow.name }} or {{ run.id }}",
            reference=match.group(0),
        )

    return PLACEHOLDER.sub(replace, template)
