"""``relaybus run``: any terminal program as an agent, messages typed in when idle."""

from __future__ import annotations

from pathlib import Path

import click

from . import render
from .app import creates_relay, get_app, json_option
from .terminal import (
    INJECT_MODES,
    MESSAGE_FORMATS,
    approval_mode,
    approval_option,
    terminal_agent_options,
)

__all__ = ["INJECT_MODES", "MESSAGE_FORMATS", "run"]

#: ``--batch`` without a number: at most this many messages a turn.
BATCH_DEFAULT = 10


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--name", metavar="NAME", help="The agent id (default: derived from host, CMD, cwd).")
@terminal_agent_options
@click.option(
    "--batch",
    type=int,
    is_flag=False,
    flag_value=BATCH_DEFAULT,
    default=1,
    metavar="[N]",
    help="Type up to N pending messages as one input, one turn of CMD "
    f"(--batch alone: {BATCH_DEFAULT}) [default: 1, one turn per message].",
)
@click.option(
    "--headless",
    is_flag=True,
    help="No terminal: output goes to the log, stdin is not read (automation, CI).",
)
@click.option(
    "--log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append the program's output to this file "
    "(headless default: ~/.local/state/relaybus/runs/NAME.log).",
)
@click.option(
    "--restart",
    type=click.Choice(("no", "on-failure")),
    default="no",
    show_default=True,
    help="on-failure: start CMD again after a non-zero exit or a signal.",
)
@click.option(
    "--max-restarts",
    type=int,
    metavar="N",
    help="With --restart on-failure: at most N restarts [default: 3].",
)
@approval_option
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
@json_option
@creates_relay
def run(
    name: str | None,
    label: str | None,
    tags: tuple[str, ...],
    caps: tuple[str, ...],
    channels: tuple[str, ...],
    quiet: float,
    prompt: str | None,
    inject: str,
    message_format: str,
    claim_first: bool,
    quiet_claims: bool,
    batch: int,
    headless: bool,
    log: Path | None,
    restart: str,
    max_restarts: int | None,
    approval: str | None,
    command: tuple[str, ...],
) -> None:
    """Run CMD as an agent; type incoming messages into it when it is idle.

    CMD runs in a pseudo-terminal with your terminal passed through, so it
    works as usual; relaybus exits with CMD's exit code (128+N if signal N
    killed it). While CMD runs it is an agent on the relay (id --name, else
    {host}-{CMD}-{project}-{hash}); it reports busy/idle and goes offline
    when CMD exits. Inside CMD, RELAYBUS_AGENT names the agent, so
    'relaybus send' and 'relaybus reply' act as it.

    \b
    --format framed (default, for agent CLIs) types a message as one line:
      [relaybus #12 from alice · subject] body (reply: relaybus reply 12 "...")
    as one bracketed paste if CMD turned that on (multi-line messages stay
    one input), else line by line; then Enter. --format raw (REPLs, shells,
    plain programs) types the body alone, as a person would; a multi-line
    body ends with a blank line (closing a Python block). --batch types the
    messages waiting at an idle moment as one input (one turn of an agent
    CLI such as codex): '[relaybus: N messages]', then each framed message.

    \b
    When: CMD is idle after --quiet seconds without output or keystrokes
    (and, with --prompt, when its prompt line matches REGEX). With
    --inject wait, each message waits for an idle moment, in order, for as
    long as it takes; --inject steer and urgent messages go in at once.
    A message is delivered once typed and read at CMD's next idle moment
    (with --prompt: back at its prompt); what CMD had not read stays unread
    for the next run (or restart).

    \b
    --approval (or RELAYBUS_APPROVAL) is stored with the agent; a Claude Code
    session inside enforces it with its PreToolUse hook ('relaybus install
    claude'), and a codex CMD gets its flags: guarded adds --sandbox read-only
    --ask-for-approval on-request, read-only --sandbox read-only
    --ask-for-approval never (a flag given in ARGS stays as given).

    Leases: while CMD runs, the tasks the agent holds (claimed by CMD's
    'relaybus claim' or by --claim-first) are renewed, each by the lease it
    was claimed with; they lapse, and return to the others, once the runner
    is gone. --claim-first claims a claimable message's task as it arrives:
    only the winner's CMD is typed the task, the others a one-line notice
    (nothing with --quiet-claims).

    \b
    Examples:
      relaybus run --name reviewer --cap review -- claude
      relaybus run --format raw --prompt '^>>> ' -- python3 -q
      relaybus run --headless --restart on-failure --max-restarts 5 --name ci -- ./agent.sh
      relaybus --url http://relay:4850 run --name bob --inject steer -- codex
      relaybus run --batch 5 -- codex
    """
    from ..errors import InvalidInput
    from ..runtime.pty import Runner, RunOptions

    app = get_app()
    if max_restarts is not None and restart != "on-failure":
        raise InvalidInput("--max-restarts needs --restart on-failure")
    options = RunOptions(
        command=command,
        name=name,
        label=label,
        tags=tags,
        capabilities=caps,
        channels=channels,
        quiet=quiet,
        prompt=prompt,
        inject=inject,
        format=message_format,
        claim_first=claim_first,
        claim_notices=not quiet_claims,
        batch=batch,
        headless=headless,
        log=log,
        restart="on-failure" if restart == "on-failure" else "no",
        max_restarts=3 if max_restarts is None else max_restarts,
        approval=approval_mode(approval),
    )
    options.check()  # bad options fail before the relay is opened
    runner = Runner(options, relay=lambda: app.relay)  # opened once the command is found
    code = runner.run()
    if app.json:
        render.emit_json(
            {
                "agent": runner.agent_id,
                "exit_code": code,
                "restarts": runner.restarts,
                "unread": runner.unread,
                "log": None if runner.log_path is None else str(runner.log_path),
            }
        )
    elif runner.unread:
        render.note(f"relaybus: {runner.unread} message(s) left unread for the next run")
    click.get_current_context().exit(code)
