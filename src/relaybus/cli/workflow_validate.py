"""``relaybus workflow validate FILE...``: check workflow files without running them
(the loader's checks: :mod:`relaybus.workflows.load`). Needs no relay: it reads the
files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .app import get_app, json_option


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
def validate(files: tuple[Path, ...]) -> None:
    """Check workflow files: YAML, the schema, what the steps name.

    Prints 'FILE: ok (N steps, M agents)' for a good file and every problem
    of a bad one as 'FILE:LINE: reason' (a key given twice, an unknown key, a
    wrong type, a step depends_on or review.of names that does not exist,
    steps waiting for each other in a cycle, a template reference to no
    step, a bad duration...). A warning ('FILE:LINE: warning: ...') is
    allowed but likely a mistake: a step's agent that agents: lacks while it
    has one of a close name. Exits 0 when every file is good, 2 otherwise.
    With --json: an array with a document per file (file, ok, name, steps,
    agents, order, errors and warnings with line and reason).

    \b
    Examples:
      relaybus workflow validate examples/review.yaml
      relaybus workflow validate examples/*.yaml
      relaybus workflow validate flow.yaml --json
    """
    from ..workflows.load import WorkflowError, load, warnings
    from .render import emit_json

    app = get_app()
    documents: list[dict[str, Any]] = []
    for path in files:
        file = str(path)
        try:
            workflow = load(path)
        except WorkflowError as err:
            errors = [
                {"line": p.line, "reason": p.reason, "message": p.format(file)} for p in err.errors
            ]
            documents.append({"file": file, "ok": False, "errors": errors, "warnings": []})
            if not app.json:
                for line in err.lines():
                    click.echo(line)
            continue
        steps, agents = len(workflow.steps), len(workflow.agents)
        notes = warnings(workflow)
        documents.append(
            {
                "file": file,
                "ok": True,
                "name": workflow.name,
                "steps": steps,
                "agents": agents,
                "order": workflow.order(),
                "errors": [],
                "warnings": [
                    {"line": p.line, "reason": p.reason, "message": p.format(file)} for p in notes
                ],
            }
        )
        if not app.json:
            click.echo(f"{file}: ok ({_count(steps, 'step')}, {_count(agents, 'agent')})")
            for note in notes:
                click.echo(f"{file}:{note.line}: warning: {note.reason}")
    if app.json:
        emit_json(documents)
    click.get_current_context().exit(0 if all(d["ok"] for d in documents) else 2)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
