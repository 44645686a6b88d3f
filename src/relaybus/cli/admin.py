"""Relay-wide commands: init, migrate, prune, events, demo."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from . import render
from .app import creates_relay, get_app, json_option

if TYPE_CHECKING:
    from ..client import Relay

#: Longest event data shown in a human ``events`` listing (characters).
EVENT_DATA_CHARS = 100


def location(relay: Relay) -> dict[str, Any]:
    """Where the relay lives: ``{"path": file or None, "database": URL without password}``."""
    store = relay.store
    path = None if store.path is None else str(store.path)
    return {"path": path, "database": store.url.render_as_string(hide_password=True)}


@click.command()
@json_option
@creates_relay
def init() -> None:
    """Create the relay and print where it lives.

    The default is .relay/relay.db in the repository root (the folder with
    .git; outside a repository, the current folder), private to you (folder
    0700, files 0600), with a .gitignore that keeps it out of git. Besides
    init, only migrate, register, run, mcp, tmux attach and serve create it;
    every other command says "no relay here" instead. Idempotent. With
    RELAYBUS_URL it checks that the relay server answers and prints its
    address instead: the server owns the database.
    """
    from ..store.files import write_gitignore
    from ..store.locate import RELAY_DIRNAME

    app = get_app()
    relay = app.relay  # opening creates the folder and the database and migrates it
    url = app.server_url
    if url is not None:
        last = relay.last_event_id()  # reachable, token accepted
        if app.json:
            render.emit_json({"url": url, "workspace": relay.workspace, "last_event_id": last})
            return
        click.echo(f"using the relay server at {url} (workspace {relay.workspace})")
        return
    where = {**location(relay), "revision": relay.store.migrate()}
    if relay.store.path is not None and relay.store.path.parent.name == RELAY_DIRNAME:
        write_gitignore(relay.store.path.parent)  # a relay made by an older relaybus has none
    if app.json:
        render.emit_json(where)
        return
    click.echo(
        f"initialized relay at {where['path'] or where['database']} (schema {where['revision']})"
    )


@click.command()
@click.option(
    "--database", metavar="URL", help="The database to migrate (RELAYBUS_DATABASE; beats --dir)."
)
@json_option
@creates_relay
def migrate(database: str | None) -> None:
    """Apply schema migrations; print the revision.

    It works on the database itself: against a relay server (RELAYBUS_URL) it
    exits 2; run it where the database is, or pass --database.

    Safe while replicas of the previous version keep serving: migrations only
    add (tables, nullable columns, indexes), run in one transaction, and give
    up after 5 s rather than queue live traffic behind a table lock (run it
    again then). Replicas starting at once on an empty database migrate it
    one at a time by themselves.

    \b
    Examples:
      relaybus migrate
      relaybus migrate --database postgresql://relay@db.internal/relay
    """
    app = get_app()
    if database is not None:
        app.overrides["database"] = database
    relay = app.database_relay("migrate")
    where = {**location(relay), "revision": relay.store.migrate()}
    if app.json:
        render.emit_json(where)
        return
    click.echo(f"{where['path'] or where['database']} is at schema revision {where['revision']}")


@click.command()
@click.option(
    "--message-days",
    type=float,
    metavar="N",
    help="Delete messages and events older than N days (default RELAYBUS_RETENTION_DAYS, 30).",
)
@click.option(
    "--agent-days",
    type=float,
    metavar="N",
    help="Delete agents offline for more than N days (default RELAYBUS_AGENT_RETENTION_DAYS, 7).",
)
@json_option
def prune(message_days: float | None, agent_days: float | None) -> None:
    """Delete old messages and events, and gone agents.

    Tasks are kept. Against a relay server it needs the admin token.
    """
    app = get_app()
    report = app.relay.prune(message_days=message_days, agent_days=agent_days)
    if app.json:
        render.emit_json(render.dump(report))
        return
    click.echo(
        f"pruned {report.messages} messages ({report.deliveries} deliveries), "
        f"{report.events} events, {report.agents} agents"
    )


@click.command()
@click.option("--since", type=int, default=0, metavar="ID", help="Only events above this id.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most N (1-1000).")
@click.option(
    "--wait",
    type=float,
    metavar="SECONDS",
    help="Block up to SECONDS until there is an event above --since.",
)
@json_option
def events(since: int, limit: int, wait: float | None) -> None:
    """Show the event log (every change), oldest first.

    \b
    Example (follow along, resuming from the last id seen):
      relaybus events --since 120 --wait 30 --json
    """
    app = get_app()
    if wait is None:
        found = app.relay.events(since=since, limit=limit)
    else:
        found = app.relay.wait_events(max(wait, 0.0), since=since, limit=limit)
    if app.json:
        render.emit_models(found)
        return
    if not found:
        render.note("no events")
        return
    render.table(
        ["id", "time", "kind", "agent", "data"],
        [
            [
                str(e.id),
                render.clock(e.created_at),
                e.kind,
                e.agent_id or "-",
                _short(json.dumps(e.data, ensure_ascii=False, default=str)),
            ]
            for e in found
        ],
    )


def _short(text: str) -> str:
    return text if len(text) <= EVENT_DATA_CHARS else text[: EVENT_DATA_CHARS - 1] + "…"


@click.command()
@click.option(
    "--reviewers",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many reviewer processes race for the task.",
)
@click.option(
    "--server",
    is_flag=True,
    help="Start a relay server (relaybus serve, on a free loopback port) and run "
    "every agent through it over HTTP.",
)
@json_option
def demo(reviewers: int, server: bool) -> None:
    """Run the multi-process demo (the main job).

    The scenario is a workflow, examples/review.yaml (shipped in the package),
    run by the workflow runner ('relaybus workflow run'): separate processes
    coordinate through a temporary relay. alice writes the PR; the review
    step's task is offered to cap:review and the reviewers race for it
    (exactly one wins, the others see who holds it); the winner reports
    progress, replies to alice in the task's thread and approves; alice
    merges and broadcasts thanks to everyone. Exits 0 only if every
    invariant held and the workflow run is done. With --server the relay is
    a 'relaybus serve' process of its own, stopped at the end.

    \b
    Examples:
      relaybus demo
      relaybus demo --reviewers 5 --json | jq '.invariants[] | select(.ok | not)'
      relaybus demo --server
    """
    from ..workflows.demo import run_demo

    app = get_app()
    code = run_demo(reviewers=reviewers, json_output=app.json, server=server)
    click.get_current_context().exit(code)
