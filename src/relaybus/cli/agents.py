"""Agent commands: register, agents, heartbeat, unregister."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from . import render
from .app import creates_relay, get_app, json_option, parse_meta
from .terminal import approval_mode, approval_option, profile_options

if TYPE_CHECKING:
    from .app import App
    from .render import JSON

#: ``relaybus.models.AgentStatus`` values (kept literal so ``--help`` needs no pydantic;
#: a test keeps them equal).
AGENT_STATUSES = ("online", "busy", "idle", "offline")


@click.command()
@click.argument("name", required=False)
@profile_options
@click.option(
    "--pid",
    type=int,
    help="A process whose exit marks the agent offline (e.g. your shell's $$); "
    "without it presence relies on heartbeats.",
)
@click.option("--meta", metavar="JSON", help="Free-form JSON object stored with the agent.")
@approval_option
@json_option
@creates_relay
def register(
    name: str | None,
    label: str | None,
    tags: tuple[str, ...],
    caps: tuple[str, ...],
    channels: tuple[str, ...],
    pid: int | None,
    meta: str | None,
    approval: str | None,
) -> None:
    """Register an agent; print its id and epoch.

    Registering an id again starts a new epoch, which fences off the old
    instance (its --epoch calls fail). NAME defaults to --as / RELAYBUS_AGENT, else to a derived
    {host}-cli-{project}-{hash}. A relay server (RELAYBUS_URL) issues the
    agent a token that lets its holder act as that agent only (replacing the
    token of an earlier registration); it is printed once, keep it.

    \b
    Examples:
      relaybus register alice --cap review --tag backend
      relaybus register bob --label "test writer" --pid $$
      relaybus register reviewer --approval read-only
    """
    app = get_app()
    meta_obj = parse_meta(meta)
    mode = approval_mode(approval)
    relay = app.relay
    # pid None unless given: this CLI process exits at once and would read as offline.
    handle = relay.register(
        name or app.agent_id,
        label=label,
        tags=tags,
        capabilities=caps,
        channels=channels,
        pid=pid,
        meta=meta_obj,
        tool="cli",
        approval=mode,
    )
    agent = handle.info()
    token = handle.token  # issued by a relay server; None embedded
    if app.json:
        render.emit_json({**render.dump(agent), "token": token})
        return
    click.echo(f"registered {agent.id} (epoch {agent.epoch})")
    click.echo(f"act as it with --as {agent.id}, or: export RELAYBUS_AGENT={agent.id}")
    if token is not None:
        click.echo(f"token: {token} (export RELAYBUS_TOKEN={token} to act as {agent.id})")


@click.command()
@click.option("--status", type=click.Choice(AGENT_STATUSES), help="Only agents with this status.")
@click.option("--tag", help="Only agents with this tag.")
@click.option("--cap", help="Only agents with this capability.")
@click.option("--channel", help="Only agents that hear this channel.")
@click.option("--online", is_flag=True, help="Leave out offline agents.")
@json_option
def agents(
    status: str | None, tag: str | None, cap: str | None, channel: str | None, online: bool
) -> None:
    """List agents and their presence.

    An agent is offline when it said so, when its last heartbeat is older than
    RELAYBUS_STALE_TTL seconds (90), or when its --pid has exited. STUCK counts
    messages still queued (not yet delivered to its session) after
    RELAYBUS_STUCK_AFTER seconds (60) while the agent is online.

    \b
    Agents that 'relaybus spawn' started (on this machine's warm relay) show
    SPAWNED: their pid, restarts and last exit code (--json: a "spawned"
    object with pid, state, restarts, exit_code).
    """
    app = get_app()
    found = app.hot.agents(
        status=status, tag=tag, capability=cap, channel=channel, online_only=online
    )
    marks = spawned_marks(app)
    for agent in found:
        mark = marks.get(agent["id"])
        if mark is not None:
            agent["spawned"] = mark
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note(
            "no agents match"
            if (status or tag or cap or channel or online)
            else "no agents registered: relaybus register NAME"
        )
        return
    render.table(
        [
            "id",
            "status",
            "label",
            "tags",
            "caps",
            "channels",
            "approval",
            "epoch",
            "last seen",
            "stuck",
            *(["spawned"] if marks else []),
        ],
        [
            [
                a["id"],
                a["status"],
                a.get("label") or "-",
                ",".join(a["tags"]) or "-",
                ",".join(a["capabilities"]) or "-",
                ",".join(a["channels"]) or "*",
                a.get("approval") or "open",
                str(a["epoch"]),
                render.ago(a["last_seen_at"]),
                str(a["stuck"]) if a.get("stuck") else "-",
                *([spawned_text(a.get("spawned"))] if marks else []),
            ]
            for a in found
        ],
    )
    stuck = sum(a.get("stuck", 0) for a in found)
    if stuck:
        render.note(
            f"{stuck} message(s) queued past RELAYBUS_STUCK_AFTER while their agent is online: "
            "see relaybus inbox --peek, relaybus status MSG_ID"
        )


def spawned_marks(app: App) -> dict[str, JSON]:
    """The spawned agents of the warm local relay this call talks to, by name: each
    its ``pid``, ``state``, ``restarts`` and ``exit_code``. One request (``GET
    /v1/spawned``), made only through the warm relay (:attr:`App.hot` a
    :class:`~relaybus.client.warm_json.JsonRelay`): a relay server or the store in this
    process supervises nothing. Empty when the warm relay cannot say (one from before
    spawning)."""
    from ..client.warm_json import JsonRelay

    hot = app.hot
    if not isinstance(hot, JsonRelay):
        return {}
    from ..client.request import Request
    from ..errors import RelayError

    try:
        answer = hot.backend.request(Request("GET", "/v1/spawned", workspace=hot.workspace))
    except RelayError:
        return {}
    keep = ("pid", "state", "restarts", "exit_code")
    return {s["name"]: {k: s.get(k) for k in keep} for s in json.loads(answer)}


def spawned_text(mark: JSON | None) -> str:
    """A spawned agent's mark: ``pid 4242``, ``pid 4242, 2 restarts, last exit 1``,
    ``exited 0``, ``released``; ``-`` for an agent nobody spawned."""
    if mark is None:
        return "-"
    state, code, restarts = mark.get("state"), mark.get("exit_code"), mark.get("restarts")
    parts = [f"pid {mark['pid']}" if state == "running" else str(state)]
    if state == "exited" and code is not None:
        parts = [f"exited {code}"]
    if restarts:
        parts.append(f"{restarts} restart{'s' if restarts > 1 else ''}")
    if code is not None and state in ("running", "restarting"):
        parts.append(f"last exit {code}")
    return ", ".join(parts)


@click.command()
@click.option(
    "--status", type=click.Choice(AGENT_STATUSES), help="Also set the status (busy, idle…)."
)
@json_option
def heartbeat(status: str | None) -> None:
    """Tell the relay this agent is alive (optionally: its status).

    \b
    Example (from a hook, every minute or so):
      relaybus --as alice heartbeat --status busy
    """
    app = get_app()
    agent = app.hot_me().heartbeat(status)
    render.result(
        agent, f"{agent['id']} is {agent['status']} (epoch {agent['epoch']})", as_json=app.json
    )


@click.command()
@json_option
def unregister() -> None:
    """Remove this agent; its unread mail goes, its tasks reopen."""
    app = get_app()
    me = app.me()
    me.unregister()
    if app.json:
        render.emit_json({"id": me.id, "workspace": app.relay.workspace, "unregistered": True})
        return
    click.echo(f"unregistered {me.id}")
