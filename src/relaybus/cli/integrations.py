"""``relaybus integration``: external systems that post events as tasks and hear back
through signed callbacks (add, list, show, rotate, revoke, deliveries, replay)."""

from __future__ import annotations

import click

from . import render
from .app import HelpGroup, get_app, json_option

#: ``relaybus.service.integrations.SCOPES`` (literal so ``--help`` imports no service).
SCOPES = ("tasks:create", "tasks:read", "messages:send", "events:read")
CALLBACK_STATUSES = ("pending", "delivered", "dead")


@click.group(cls=HelpGroup)
@json_option
def integration() -> None:
    """Manage integrations: monitoring, CI or a ticket desk posting events as tasks.

    An integration has its own token (shown once), scopes, the targets and
    channels it may address, a rate limit, and an optional callback URL that
    hears every change of its tasks, signed with its secret (shown once). It
    posts with POST /v1/integrations/events on a relay server; a repeat of an
    open event's dedupe key only counts another occurrence. Needs the admin
    token against a server. See docs/integrations.md.

    \b
    Examples:
      relaybus integration add alertmanager --target cap:ops --channel alerts \\
          --callback-url https://ops.example/relaybus
      relaybus integration deliveries alertmanager --status dead
      relaybus integration replay alertmanager 17
    """


@integration.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What its token may do (repeat; default tasks:create and tasks:read).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="A target it may address, e.g. cap:ops (repeat; '*' for any). Its events go to "
    "the first unless they name one.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="A channel it may post to (repeat; '*' for any).",
)
@click.option("--callback-url", metavar="URL", help="Where its task changes are posted, signed.")
@click.option("--rate-limit", type=int, metavar="N", help="Events per minute (default 120).")
@json_option
def add(
    name: str,
    scopes: tuple[str, ...],
    targets: tuple[str, ...],
    channels: tuple[str, ...],
    callback_url: str | None,
    rate_limit: int | None,
) -> None:
    """Create integration NAME and print its token (and signing secret) once."""
    app = get_app()
    created = app.relay.add_integration(
        name,
        scopes=scopes or None,
        targets=targets or None,
        channels=channels or None,
        callback_url=callback_url,
        rate_limit=rate_limit,
    )
    if app.json:
        render.emit_json(render.dump(created))
        return
    click.echo(f"added integration {name}")
    _secrets(created.token, created.secret)


@integration.command("list")
@json_option
def list_() -> None:
    """List the workspace's integrations."""
    app = get_app()
    found = [render.dump(i) for i in app.relay.integrations()]
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no integrations")
        return
    render.table(
        ["name", "status", "scopes", "targets", "channels", "callback", "per minute"],
        [
            [
                i["name"],
                i["status"],
                ",".join(i["scopes"]) or "-",
                ",".join(i["targets"]) or "-",
                ",".join(i["channels"]) or "-",
                i.get("callback_url") or "-",
                str(i["rate_limit"]),
            ]
            for i in found
        ],
    )


@integration.command("show")
@click.argument("name")
@json_option
def show(name: str) -> None:
    """Show integration NAME and its latest callbacks."""
    app = get_app()
    found = render.dump(app.relay.integration(name))
    recent = [render.dump(c) for c in app.relay.callbacks(name, limit=10)]
    if app.json:
        render.emit_json({**found, "callbacks": recent})
        return
    click.echo(click.style(f"integration {name}", bold=True))
    render.fields(
        [
            ("status", found["status"]),
            ("scopes", ", ".join(found["scopes"]) or "-"),
            ("targets", ", ".join(found["targets"]) or "-"),
            ("channels", ", ".join(found["channels"]) or "-"),
            ("callback", found.get("callback_url") or "-"),
            ("rate limit", f"{found['rate_limit']} events/minute"),
            ("created", f"{render.clock(found['created_at'])} ({render.ago(found['created_at'])})"),
        ]
    )
    if recent:
        click.echo()
        _callback_table(recent)


@integration.command("rotate")
@click.argument("name")
@click.option("--secret", is_flag=True, help="Also replace the callback signing secret.")
@json_option
def rotate(name: str, secret: bool) -> None:
    """Give integration NAME a new token (the old one stops at once); print it once."""
    app = get_app()
    created = app.relay.rotate_integration(name, secret=secret)
    if app.json:
        render.emit_json(render.dump(created))
        return
    click.echo(f"rotated integration {name}: the old token no longer works")
    _secrets(created.token, created.secret)


@integration.command("revoke")
@click.argument("name")
@json_option
def revoke(name: str) -> None:
    """Revoke integration NAME: its token and its callbacks stop; its tasks stay."""
    app = get_app()
    revoked = render.dump(app.relay.revoke_integration(name))
    render.result(revoked, f"revoked integration {name} (rotate brings it back)", as_json=app.json)


@integration.command("deliveries")
@click.argument("name")
@click.option("--status", type=click.Choice(CALLBACK_STATUSES), help="Only these callbacks.")
@click.option(
    "--limit", type=int, default=50, show_default=True, help="At most N (1-1000), newest first."
)
@json_option
def deliveries(name: str, status: str | None, limit: int) -> None:
    """List integration NAME's callbacks, newest first, with their attempts."""
    app = get_app()
    found = [render.dump(c) for c in app.relay.callbacks(name, status=status, limit=limit)]
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no callbacks")
        return
    _callback_table(found)


@integration.command("replay")
@click.argument("name")
@click.argument("delivery_id", metavar="ID", type=int)
@json_option
def replay(name: str, delivery_id: int) -> None:
    """Send callback ID of integration NAME again, now (a dead letter, or one the
    receiver lost), with a fresh budget of attempts."""
    app = get_app()
    again = render.dump(app.relay.replay_callback(name, delivery_id))
    render.result(again, f"callback #{delivery_id} is pending again", as_json=app.json)


def _secrets(token: str, secret: str | None) -> None:
    click.echo(f"token   {token}")
    if secret is not None:
        click.echo(f"secret  {secret}   (verifies X-Relaybus-Signature)")
    render.note("shown this once: keep them in your secret store")


def _callback_table(found: list[render.JSON]) -> None:
    render.table(
        ["id", "event", "task", "status", "attempts", "last", "created"],
        [
            [
                str(c["id"]),
                c["event"],
                f"#{c['task_id']}",
                c["status"],
                str(c["attempts"]),
                c.get("last_error") or (str(c["last_status"]) if c.get("last_status") else "-"),
                render.ago(c["created_at"]),
            ]
            for c in found
        ],
    )
