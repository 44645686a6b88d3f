"""Task commands: tasks, task (show, update, create), claim, release."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..errors import Conflict
from . import render
from .app import HelpGroup, get_app, json_option, parse_meta

if TYPE_CHECKING:
    from .render import JSON

#: ``relaybus.models.TaskStatus`` values (literal so ``--help`` needs no pydantic; a test
#: keeps them equal).
TASK_STATUSES = ("open", "claimed", "in_progress", "blocked", "done", "failed", "canceled")
#: The statuses ``task ID --status`` may set (claim and release set the others).
UPDATE_STATUSES = ("in_progress", "blocked", "done", "failed", "canceled")


def status_text(task: JSON) -> str:
    """``in_progress 50% (halfway)``, of a task's wire shape."""
    text: str = task["status"]
    note = task.get("progress_note")
    if task["progress"] or note:
        text += f" {task['progress']}%"
    if note:
        text += f" ({note})"
    return text


def lease_text(task: JSON) -> str:
    """``until 14:12:01 (in 9m)``, or ``-`` without a lease."""
    expires = task.get("lease_expires_at")
    if expires is None:
        return "-"
    return f"until {render.clock(expires)} ({render.ago(expires)})"


@click.command()
@click.option("--status", type=click.Choice(TASK_STATUSES), help="Only tasks with this status.")
@click.option("--assignee", metavar="AGENT", help="Only tasks held by AGENT.")
@click.option(
    "--limit", type=int, default=100, show_default=True, help="At most N (1-1000), newest first."
)
@json_option
def tasks(status: str | None, assignee: str | None, limit: int) -> None:
    """List tasks, newest first.

    With --as / RELAYBUS_AGENT, only the tasks that agent may see (it created,
    holds, or received the message of); without, every task of the workspace.
    """
    app = get_app()
    reader = app.hot if app.agent_id is None else app.hot_me()
    found = reader.tasks(status=status, assignee=assignee, limit=limit)
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no tasks")
        return
    # Tasks raised from outside carry a link (and repeats): shown when any has one.
    linked = any(t.get("external_url") for t in found)
    repeated = any(t.get("occurrence_count", 1) > 1 for t in found)
    render.table(
        ["id", "status", "title", "assignee", "lease", "target", "updated"]
        + (["seen"] if repeated else [])
        + (["link"] if linked else []),
        [
            [
                str(t["id"]),
                status_text(t),
                t["title"],
                t.get("assignee") or "-",
                render.ago(t.get("lease_expires_at")),
                t["target"],
                render.ago(t["updated_at"]),
            ]
            + ([f"{t.get('occurrence_count', 1)}×"] if repeated else [])
            + ([t.get("external_url") or "-"] if linked else [])
            for t in found
        ],
    )


def show_task(task: JSON, history: list[JSON]) -> None:
    """Print one task's fields, body and history (wire shapes)."""
    click.echo(click.style(f"task #{task['id']}  {task['title']}", bold=True))
    channel, message_id = task.get("channel"), task.get("message_id")
    pairs = [
        ("status", status_text(task)),
        ("assignee", task.get("assignee") or "-"),
        ("lease", lease_text(task)),
        ("target", task["target"] + (f" on channel {channel}" if channel else "")),
        (
            "creator",
            (task.get("creator") or "-")
            + (f" (message #{message_id})" if message_id is not None else ""),
        ),
        ("created", f"{render.clock(task['created_at'])} ({render.ago(task['created_at'])})"),
        ("updated", f"{render.clock(task['updated_at'])} ({render.ago(task['updated_at'])})"),
    ]
    if task.get("integration") or task.get("source"):
        pairs.append(
            ("from", " via ".join(x for x in (task.get("source"), task.get("integration")) if x))
        )
    if task.get("external_url"):
        pairs.append(("link", task["external_url"]))
    if task.get("occurrence_count", 1) > 1:
        seen = task.get("last_seen_at")
        pairs.append(
            (
                "seen",
                f"{task['occurrence_count']} times"
                + (f", last {render.ago(seen)}" if seen else ""),
            )
        )
    if task.get("result") is not None:
        pairs.append(("result", task["result"]))
    if task.get("meta"):
        pairs.append(("meta", json.dumps(task["meta"], ensure_ascii=False, sort_keys=True)))
    render.fields(pairs)
    if task.get("body"):
        click.echo()
        click.echo("\n".join(f"  {line}" for line in task["body"].splitlines()))
    click.echo()
    render.table(
        ["time", "event", "status", "agent", "progress", "note"],
        [
            [
                render.clock(e["created_at"]),
                e["kind"],
                e["status"],
                e.get("agent_id") or "-",
                "-" if e.get("progress") is None else f"{e['progress']}%",
                e.get("note") or "",
            ]
            for e in history
        ],
    )


class TaskGroup(HelpGroup):
    """``relaybus task ID [options]`` (show or update a task) beside ``relaybus task
    create``: an ID first runs the ``show`` subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].isdigit():
            args = ["show", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "ID [OPTIONS] | create TITLE --to TARGET ...")


@click.group(cls=TaskGroup)
@json_option
def task() -> None:
    """Show or update task ID (relaybus task ID ...), or open one (relaybus task create).

    \b
    Examples:
      relaybus task 3
      relaybus --as bob task 3 --progress 50 --note "tests pass, docs left"
      relaybus --as bob task 3 --status done --result "merged as a1b2c3"
      relaybus task create "Rotate the staging keys" --to cap:ops --url https://t.example/OPS-7
    """


@task.command("create")
@click.argument("title")
@click.option("--to", "target", required=True, metavar="TARGET", help="Whom to offer it to.")
@click.option("--body", help="What to do (default: the title).")
@click.option("--channel", metavar="NAME", help="Narrow the target to agents on this channel.")
@click.option("--meta", metavar="JSON", help="A JSON object kept with the task.")
@click.option("--url", "external_url", metavar="URL", help="A link to the ticket, alert or PR.")
@click.option(
    "--priority",
    type=click.Choice(("low", "normal", "high", "urgent")),
    default="normal",
    show_default=True,
)
@click.option("--dedupe-key", metavar="KEY", help="At most one active task has this key.")
@json_option
def create(
    title: str,
    target: str,
    body: str | None,
    channel: str | None,
    meta: str | None,
    external_url: str | None,
    priority: str,
    dedupe_key: str | None,
) -> None:
    """Open a task titled TITLE and the claimable message that offers it to --to.

    With --as / RELAYBUS_AGENT it comes from that agent; without, from the
    operator (sender "relaybus"). Exactly one recipient can claim it.
    """
    app = get_app()
    meta_obj = parse_meta(meta)
    actor = app.relay if app.agent_id is None else app.me()
    created = render.dump(
        actor.create_task(
            title,
            to=target,
            body=body,
            channel=channel,
            meta=meta_obj,
            external_url=external_url,
            priority=priority,
            dedupe_key=dedupe_key,
        )
    )
    render.result(
        created, f"opened task #{created['id']} for {created['target']}", as_json=app.json
    )


@task.command("show")
@click.argument("task_id", metavar="ID", type=int)
@click.option("--status", type=click.Choice(UPDATE_STATUSES), help="Move the task on.")
@click.option("--progress", type=int, metavar="N", help="Percent done, 0-100.")
@click.option("--note", help="What is happening (kept in the history).")
@click.option("--result", help="The outcome, e.g. a summary or a link.")
@json_option
def show(
    task_id: int,
    status: str | None,
    progress: int | None,
    note: str | None,
    result: str | None,
) -> None:
    """Show task ID and its history, or update it.

    With --as / RELAYBUS_AGENT, it reads and updates as that agent (a task it
    may not see is "no task ID"; the holder moves the task on; its creator may
    close it); without, as the workspace operator.
    Progress on a claimed task moves it to in_progress and renews the lease.

    \b
    Examples:
      relaybus task 3
      relaybus --as bob task 3 --progress 50 --note "tests pass, docs left"
      relaybus --as bob task 3 --status done --result "merged as a1b2c3"
    """
    app = get_app()
    if status is None and progress is None and note is None and result is None:
        reader = app.relay if app.agent_id is None else app.me()
        found = render.dump(reader.task(task_id))
        history = [render.dump(e) for e in reader.task_history(task_id)]
        if app.json:
            render.emit_json({**found, "history": history})
            return
        show_task(found, history)
        return
    # Without --as, the workspace operator acts (Relay.update_task), not an agent.
    actor = app.relay if app.agent_id is None else app.me()
    updated = render.dump(
        actor.update_task(task_id, status=status, progress=progress, note=note, result=result)
    )
    render.result(updated, update_text(updated, note=note, result=result), as_json=app.json)


def update_text(task: JSON, *, note: str | None, result: str | None) -> str:
    """What an update just made: ``task #3 is done 100%; result: merged``.

    Only this update's note is shown (an earlier note is history, not news).
    """
    text = f"task #{task['id']} is {task['status']}"
    if task["progress"] or note is not None:
        text += f" {task['progress']}%"
    if note is not None:
        text += f" ({note})"
    if result is not None:
        text += f"; result: {result}"
    return text


@click.command()
@click.argument("task_id", metavar="ID", type=int)
@click.option(
    "--lease",
    type=float,
    metavar="SECONDS",
    help="Hold it this long unless renewed (default RELAYBUS_LEASE_SECONDS, 600).",
)
@json_option
def claim(task_id: int, lease: float | None) -> None:
    """Claim task ID; exit 0 only if you now hold it.

    Exactly one of any number of racing claimers wins; the others exit 1 with
    a line naming the holder. Claiming a task you hold renews the lease; update
    it or claim it again before the lease ends, or it reopens.

    \b
    Example:
      relaybus --as bob claim 3 && relaybus --as bob task 3 --progress 10
    """
    app = get_app()
    me = app.hot_me()
    held = me.claim(task_id, lease=lease)
    holder = held.get("assignee")
    if holder != me.id:  # the service refuses instead; this guards the exit code
        raise Conflict(f"task {task_id} is held by {holder}", holder=holder)
    render.result(
        held,
        f'claimed task #{held["id"]} "{held["title"]}"; lease {lease_text(held)}',
        as_json=app.json,
    )


@click.command()
@click.argument("target", metavar="ID|NAME")
@click.option(
    "--reason", metavar="TEXT", help="Why (a spawned agent: kept with its released event)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="A spawned agent: seconds to end gracefully (SIGTERM) before it is killed [10].",
)
@json_option
def release(target: str, reason: str | None, timeout: float | None) -> None:
    """Give back task ID (it is open again for anyone), or stop spawned agent NAME.

    \b
    A task ID (a number) is released by the agent holding it (--as).
    A NAME is an agent 'relaybus spawn' started: it gets SIGTERM, then
    SIGKILL after --timeout seconds; it is not restarted, and goes offline.

    \b
    Examples:
      relaybus --as alice release 12
      relaybus release reviewer --reason "review done"
      relaybus release worker --timeout 30 --json
    """
    app = get_app()
    if not target.isdigit():
        _release_spawned(target, reason, timeout)
        return
    if reason is not None or timeout is not None:
        from ..errors import InvalidInput

        raise InvalidInput("--reason and --timeout are for a spawned agent's NAME, not a task ID")
    released = app.hot_me().release(int(target))
    render.result(
        released,
        f"released task #{released['id']}; it is {released['status']} again",
        as_json=app.json,
    )


def _release_spawned(name: str, reason: str | None, timeout: float | None) -> None:
    """``relaybus release NAME``: stop the spawned agent NAME through the SDK."""
    app = get_app()
    options = {} if timeout is None else {"timeout": timeout}
    agent = app.relay.release(name, reason=reason, **options)
    if app.json:
        render.emit_json(render.dump(agent))
        return
    code = "" if agent.exit_code is None else f" (exit code {agent.exit_code})"
    click.echo(f"released {agent.name}{code}; it is offline and not restarted")
