"""``relaybus workflow run|status|resume|cancel``: the workflow runner's commands
(:mod:`relaybus.workflows.runner`).

``run`` and ``resume`` stay in the foreground until the run ends, showing its
progress: a live table of the steps on a terminal, a line per event otherwise, a
JSON object per event (one per line) with ``--json``. Exit status: 0 when every step
is done, 1 when the run failed or was cancelled, 2 for bad input (a bad file, an
unknown run).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .app import creates_relay, get_app, json_option

if TYPE_CHECKING:
    from ..client import Relay
    from ..models import WorkflowRun
    from ..workflows.progress import Progress
    from ..workflows.spec import Workflow
    from .app import App

REF_HELP = "A run id, or a workflow file (its newest run)."


def _load(path: str | Path) -> Workflow:
    from ..workflows.load import load

    return load(Path(path))


def _progress(as_json: bool) -> Progress:
    from ..workflows.progress import JsonLines, LiveTable, PlainLines

    if as_json:
        return JsonLines()
    if sys.stdout.isatty():
        return LiveTable()
    return PlainLines()


def _runner(app: App, workflow: Workflow, progress: Progress, keep_agents: bool) -> Any:
    from ..client.warm_backend import open_relay
    from ..workflows.runner import WorkflowRunner

    def open_tail() -> Relay:
        return open_relay(app.settings, create=False)

    return WorkflowRunner(
        app.relay, workflow, open_tail=open_tail, progress=progress, keep_agents=keep_agents
    )


def _finish(runner: Any, progress: Progress) -> None:
    from ..models import WorkflowRunStatus

    try:
        status = runner.execute()
    finally:
        progress.close()
    sys.exit(0 if status == WorkflowRunStatus.DONE else 1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--keep-agents",
    is_flag=True,
    help="Leave the agents the run spawned running at the end (default: released).",
)
@json_option
@creates_relay
def run(file: Path, keep_agents: bool) -> None:
    """Run a workflow file: spawn its agents, run its steps as tasks, until done.

    Each step becomes a relaybus task (see 'relaybus tasks'), offered to its
    agent or to any agent with its capability, once its depends_on are done.
    A result is checked (verify:), a failure tried again (retries:), an idle
    agent nudged and then replaced. The run's state is kept in the relay:
    if this command is killed, 'relaybus workflow resume FILE' goes on.

    Progress: a live table on a terminal, a line per event otherwise, and
    with --json one JSON object per event (a line each), e.g.
    {"event": "step.done", "t": 1718000000.1, "run": 3, "step": "plan", ...}.
    Exit status: 0 done, 1 failed or cancelled, 2 a bad file.

    \b
    Examples:
      relaybus workflow run examples/review.yaml
      relaybus workflow run review.yaml --json | jq -c 'select(.event=="step.done")'
      relaybus workflow run review.yaml --keep-agents
    """
    app = get_app()
    workflow = _load(file)
    progress = _progress(app.json)
    runner = _runner(app, workflow, progress, keep_agents)
    runner.start()
    _finish(runner, progress)


@click.command()
@click.argument("ref", metavar="FILE|RUN_ID")
@click.option("--keep-agents", is_flag=True, help="Leave the spawned agents running at the end.")
@json_option
def resume(ref: str, keep_agents: bool) -> None:
    """Go on with a run whose runner died (killed, or its machine rebooted).

    Takes the run over when its runner is gone (its process is dead, or its
    heartbeat is older than 30 s), follows its open tasks again and repeats
    no step that finished. The steps are those of the file as the run
    started (kept with the run), even if the file changed since.

    \b
    Examples:
      relaybus workflow resume examples/review.yaml
      relaybus workflow resume 12 --json
    """
    from ..workflows.load import loads

    app = get_app()
    from ..workflows.runner_store import RunStore

    stored = RunStore(app.relay).find(ref, _load)
    workflow = loads(stored.source, path=Path(stored.file) if stored.file else None)
    progress = _progress(app.json)
    runner = _runner(app, workflow, progress, keep_agents)
    runner.attach(stored)
    _finish(runner, progress)


@click.command()
@click.argument("ref", metavar="FILE|RUN_ID")
@json_option
def status(ref: str) -> None:
    """Show a run: its status, who runs it, and each step's status, agent,
    attempt and time. Exit status 0 whatever the run's status (2: no such run).

    --json prints the run as stored, with its state ({"steps": {NAME:
    {"status", "round", "result", "attempts": [...]}}}).

    \b
    Examples:
      relaybus workflow status examples/review.yaml
      relaybus workflow status 12 --json | jq '.state.steps.plan.result'
    """
    from ..workflows.runner_store import RunStore

    app = get_app()
    found = RunStore(app.relay).find(ref, _load)
    if app.json:
        click.echo(found.model_dump_json())
        return
    _show(found)


def _show(run: WorkflowRun) -> None:
    from rich.console import Console

    from ..workflows.progress import steps_table
    from ..workflows.runner_state import RunState
    from ..workflows.runner_store import holder_alive

    state = RunState.from_dict(run.state, run.state.get("steps", {}))
    who = run.runner or "nobody"
    if run.status.value == "running":
        who += "" if holder_alive(run) else " (gone: relaybus workflow resume)"
    console = Console()
    console.print(f"workflow {run.name}: run {run.id} {run.status.value} (runner {who})")
    if run.file:
        console.print(f"  file: {run.file}", style="dim")
    console.print(steps_table(state, now=run.finished_at.timestamp() if run.finished_at else None))
    for name, step in state.steps.items():
        if step.reason:
            console.print(f"  {name}: {step.reason}", style="red")


@click.command()
@click.argument("ref", metavar="FILE|RUN_ID")
@json_option
def cancel(ref: str) -> None:
    """Cancel a run: mark it cancelled and cancel its open tasks. A runner
    still running it stops and releases the agents it spawned.

    \b
    Examples:
      relaybus workflow cancel examples/review.yaml
      relaybus workflow cancel 12 --json
    """
    from ..workflows.runner_control import cancel_run
    from ..workflows.runner_store import RunStore

    app = get_app()
    store = RunStore(app.relay)
    found = store.find(ref, _load)
    done = cancel_run(app.relay, found)
    if app.json:
        click.echo(done.model_dump_json())
        return
    click.echo(f"workflow {done.name}: run {done.id} {done.status.value}")
