"""``relaybus workflow``: run a multi-agent workflow file (validate, run, status,
resume, cancel). Each subcommand lives in its own module and is imported only when it
runs (:class:`~relaybus.cli.LazyCommands`): ``validate`` in :mod:`.workflow_validate`,
the runner's commands in :mod:`.workflow_run`."""

from __future__ import annotations

import click

from . import LazyCommands
from .app import HelpGroup, json_option

#: The subcommands, in the order help lists them, with where each lives (this package).
SUBCOMMANDS = {
    "validate": "workflow_validate:validate",
    "run": "workflow_run:run",
    "status": "workflow_run:status",
    "resume": "workflow_run:resume",
    "cancel": "workflow_run:cancel",
}


class WorkflowGroup(HelpGroup):
    """Lists the subcommands in :data:`SUBCOMMANDS`' order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=WorkflowGroup, commands=LazyCommands(SUBCOMMANDS))
@json_option
def workflow() -> None:
    """Run a workflow: agents and steps described in a YAML file.

    A workflow names the agents to spawn (a preset CLI or any command) and
    its steps: each a relaybus task for a named agent or any agent with a
    capability, with depends_on, a timeout, retries and a check of its
    result. The runner keeps its state in the relay: a runner that was
    killed goes on with 'resume', repeating no finished step. The format is
    in docs/workflows.md.

    \b
    Examples:
      relaybus workflow validate examples/*.yaml
      relaybus workflow run examples/review.yaml
      relaybus workflow status examples/review.yaml --json
      relaybus workflow resume examples/review.yaml
    """
