"""``relaybus watch``: the relay's events as they happen, one line each.

Over a relay server (``RELAYBUS_URL``) it follows the Server-Sent Events
stream through :meth:`relaybus.Relay.stream`, which reconnects with backoff
and resumes from the last event id, so a restart of the server loses nothing
and shows nothing twice. On the embedded store it follows the event log
(``wait_events``). Both print the same lines, and with ``--json`` the same
objects: ``Event.model_dump(mode="json")``, with the whole message in
``data["message"]`` of a ``message.sent`` event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInput, NotFound
from . import render
from .app import App, get_app, json_option

if TYPE_CHECKING:
    from rich.console import Console

    from ..client import Relay
    from ..models import Event

#: The colour of each kind family (the part before the dot).
FAMILY_STYLES = {"message": "cyan", "task": "yellow", "agent": "green", "relay": "magenta"}
#: Width of the kind column (``agent.unregistered`` is the longest kind).
KIND_WIDTH = 18
#: Width of the actor column; longer agent ids are cut with an ellipsis.
ACTOR_WIDTH = 20
#: Longest subject or first body line quoted in a line (characters).
QUOTE_CHARS = 60
#: Longest summary of an event kind this command does not know (characters).
DATA_CHARS = 100
#: Tasks whose audience an embedded ``--as`` watch remembers.
TASK_CACHE_SIZE = 10_000


@click.command()
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Watch as this agent: its mail, its tasks and presence "
    "(default: relaybus --as / RELAYBUS_AGENT).",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every event of the workspace, even with RELAYBUS_AGENT set (as admin).",
)
@click.option(
    "--since",
    type=click.IntRange(min=0),
    metavar="ID",
    help="First show the events after event ID, then follow (default: from now).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only this kind (repeat); a kind ending in '.' is a family, e.g. 'task.'.",
)
@json_option
def watch(as_: str | None, everything: bool, since: int | None, kinds: tuple[str, ...]) -> None:
    """Show what happens on the relay, live, one line per event.

    Lines give the time, the kind (coloured by family), who acted and what
    happened; --json prints each event as one JSON object per line instead.
    Against a relay server (RELAYBUS_URL) it follows the live stream and
    reconnects by itself if the connection drops, missing nothing; on the
    embedded store it follows the event log. Ctrl-C stops it (exit 0).

    \b
    Examples:
      relaybus watch
      relaybus watch --as bob --json
      relaybus watch --since 120 --kind message. --kind task.
    """
    app = get_app()
    if as_ is not None and everything:
        raise InvalidInput("--as and --all do not combine: --all is everything, --as one agent")
    agent = None if everything else (as_ or app.agent_id)
    try:
        follow(app, agent, since, kinds)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends: exit 0, quietly


def follow(app: App, agent: str | None, since: int | None, kinds: Sequence[str]) -> None:
    """Print the events of ``app``'s relay after ``since`` (``None``: from now) for
    ever, as ``agent`` sees them (``None``: everything of the workspace).

    Raises:
        NotFound: no agent ``agent`` (exit 2).
        StoreError: the relay server cannot be reached when the watch starts
            (later it reconnects instead).
        RelayError: the server refused the stream (e.g. 403 for another agent's token).
    """
    relay = app.relay
    if agent is not None:
        relay.agent(agent)  # an unknown name fails now, with close matches
    if since is None:
        # Pin "now" with a plain request: an unreachable server fails here, in one line.
        since = relay.last_event_id()
    if app.json:
        show: Callable[[Event], None] = json_line
    else:
        render.note(f"watching {where(app, relay)}{f' as {agent}' if agent else ''} (Ctrl-C stops)")
        show = Lines()
    events = stream(relay, remote=app.server_url is not None, agent=agent, since=since, kinds=kinds)
    with reconnect_notes(), contextlib.closing(events):
        for event in events:
            show(event)


def where(app: App, relay: Relay) -> str:
    """The relay server's URL, or the database file (or URL) of the embedded store."""
    if app.server_url is not None:
        return app.server_url
    store = relay.store
    return str(store.path) if store.path is not None else store.url.render_as_string()


def stream(
    relay: Relay, *, remote: bool, agent: str | None, since: int, kinds: Sequence[str]
) -> Generator[Event, None, None]:
    """The events after ``since`` as ``agent`` (``None``: everyone) may see them, of
    ``kinds`` (all if empty), each once, oldest first, for ever.

    Over a server this is :meth:`Relay.stream` (the server filters). Embedded,
    the log is followed and filtered here with :class:`AgentView`, and each
    ``message.sent`` gets its message in ``data["message"]`` as the server's
    stream carries it.
    """
    wanted = list(kinds) or None
    if remote:
        yield from relay.stream(since=since, agent=agent, kinds=wanted)
        return
    from ..client.transport import matches

    view = None if agent is None else AgentView(relay, agent)
    for event in relay.stream(since=since):
        # The view sees every event (a task's audience grows with its events);
        # the kinds filter comes after it.
        if view is not None and not view.sees(event):
            continue
        if wanted is None or matches(event.kind, wanted):
            yield with_message(relay, event)


def with_message(relay: Relay, event: Event) -> Event:
    """``event``, with the message in ``data["message"]`` (its recipients are
    ``data["recipients"]``, as on the server's stream) if it is a ``message.sent``
    that lacks it (the embedded log stores only the id)."""
    if event.kind != "message.sent" or "message" in event.data:
        return event
    try:
        message = relay.message(int(event.data["message_id"]))
    except (NotFound, KeyError, TypeError, ValueError):
        return event  # pruned since, or not an event this version wrote
    data = {**event.data, "message": message.model_dump(mode="json", exclude={"recipients"})}
    return event.model_copy(update={"data": data})


class AgentView:
    """Which events one agent may see, for an embedded watch ``--as NAME``.

    The rule of the relay server's stream
    (:meth:`relaybus.server.hub.Hub.visible_to`): ``message.sent`` it sent or
    receives, ``message.delivered`` and ``message.read`` by itself, every
    ``agent.*`` event, ``task.*`` events of tasks it may see (it created the
    task, holds it, or received its message: the service's visibility rule);
    no ``relay.*``.
    A task's audience is read from the relay the first time the task shows up,
    then grows with the agents that act on it (only agents that may see a task
    can act on it). ``pair.*`` events of its own pairs.
    """

    def __init__(self, relay: Relay, agent_id: str, size: int = TASK_CACHE_SIZE) -> None:
        self.relay = relay
        self.agent_id = agent_id
        self.size = size
        self._tasks: OrderedDict[int, set[str]] = OrderedDict()

    def sees(self, event: Event) -> bool:
        kind, actor = event.kind, event.agent_id
        if kind == "message.sent":
            return actor == self.agent_id or self.agent_id in event.data.get("recipients", ())
        if kind in ("message.read", "message.delivered"):
            return actor == self.agent_id
        if kind.startswith("agent."):
            return True
        if kind.startswith("task."):
            return self.agent_id in self._audience(event.data.get("task_id"), actor)
        if kind.startswith("pair."):  # the pair's two agents, as the server's stream
            return self.agent_id in (event.data.get("inviter"), event.data.get("invitee"))
        return False

    def _audience(self, task_id: object, actor: str | None) -> set[str]:
        if not isinstance(task_id, int):
            return {actor} if actor else set()
        agents = self._tasks.get(task_id)
        if agents is None:
            agents = self._load(task_id)
            self._tasks[task_id] = agents
            while len(self._tasks) > self.size:
                self._tasks.popitem(last=False)
        else:
            self._tasks.move_to_end(task_id)
        if actor:
            agents.add(actor)  # the creator, a claimer or a holder acting
        return agents

    def _load(self, task_id: int) -> set[str]:
        try:
            task = self.relay.task(task_id)
        except NotFound:
            return set()  # pruned: only the actors of its events see them
        agents = {a for a in (task.creator, task.assignee) if a}
        if task.message_id is not None:
            with contextlib.suppress(NotFound):
                agents.update(self.relay.message(task.message_id).recipients)
        return agents


# -- output ------------------------------------------------------------------------------


def json_line(event: Event) -> None:
    """Print ``event`` as one line of JSON (flushed, for pipes)."""
    click.echo(json.dumps(event.model_dump(mode="json"), ensure_ascii=False, default=str))


class Lines:
    """Human output, one line per event: ``time  kind  actor  summary``, the first
    three in fixed-width columns (longer values cut with an ellipsis). Colour
    (rich) on a terminal, each line cut to its width; plain text, whole and
    flushed line by line, otherwise. ``console``: where to print (tests)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        if console is None and sys.stdout.isatty():
            from rich import console as rich_console

            self.console = rich_console.Console(highlight=False)

    def __call__(self, event: Event) -> None:
        time = render.clock(event.created_at)
        kind = fit(event.kind, KIND_WIDTH)
        actor = fit(clean(event.agent_id or "relay"), ACTOR_WIDTH)
        text = clean(summary(event))
        if self.console is None:
            click.echo(f"{time}  {kind}  {actor}  {text}")
            return
        from rich.text import Text

        style = FAMILY_STYLES.get(event.kind.partition(".")[0], "white")
        line = Text()
        line.append(f"{time}  ", style="dim")
        line.append(kind, style=style)
        line.append(f"  {actor}", style="bold")
        line.append(f"  {text}")
        self.console.print(line, no_wrap=True, overflow="ellipsis", soft_wrap=False)


def fit(text: str, width: int) -> str:
    """``text`` padded to ``width`` characters, or cut to it with an ellipsis."""
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


def summary(event: Event) -> str:
    """What an event says, in a few words: ``alice → bob, carol #12 "Review PR 7"``."""
    data = event.data
    kind = event.kind
    task = f"task #{data.get('task_id')}"
    if kind == "message.sent":
        return _message_sent(event)
    if kind == "message.read":
        return "read " + render.names([f"#{i}" for i in data.get("message_ids", [])])
    if kind == "message.delivered":
        ids = render.names([f"#{i}" for i in data.get("message_ids", [])])
        return f"delivered {ids} by {data.get('via')}"
    if kind == "agent.registered":
        parts = [f"epoch {data.get('epoch')}"]
        if data.get("label"):
            parts.append(f"label {data['label']!r}")
        parts += [f"cap:{c}" for c in data.get("capabilities") or []]
        parts += [f"tag:{t}" for t in data.get("tags") or []]
        if data.get("channels"):
            parts.append("channels " + ",".join(data["channels"]))
        return f"registered ({', '.join(parts)})"
    if kind in ("agent.online", "agent.unregistered"):
        return kind.partition(".")[2]
    if kind == "agent.offline":
        return "offline" + (f" ({data['reason']})" if data.get("reason") else "")
    if kind == "agent.updated":
        changed = ", ".join(f"{k} {_value(v)}" for k, v in data.items() if v is not None)
        return f"updated {changed}" if changed else "updated"
    if kind == "task.created":
        title = f" {quote(str(data['title']))}" if data.get("title") else ""
        return f"created {task}{title} for {data.get('target')}"
    if kind in ("task.claimed", "task.renewed"):
        return f"{kind.partition('.')[2]} {task}{_lease(data.get('lease_expires_at'))}"
    if kind == "task.released":
        return f"released {task}" + (f" ({data['reason']})" if data.get("reason") else "")
    if kind == "task.updated":
        return _task_updated(task, data)
    if kind == "relay.pruned":
        return (
            f"pruned {data.get('messages', 0)} messages, {data.get('events', 0)} events, "
            f"{data.get('agents', 0)} agents"
        )
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= DATA_CHARS else text[: DATA_CHARS - 1] + "…"


def _message_sent(event: Event) -> str:
    data = event.data
    message: dict[str, Any] = data.get("message") or {}
    recipients = list(data.get("recipients") or message.get("recipients") or [])
    text = f"{event.agent_id or '?'} → {render.names(recipients)} #{data.get('message_id')}"
    said = data.get("subject") or message.get("subject") or message.get("body") or ""
    if said:
        text += f" {quote(str(said))}"
    notes = []
    if data.get("channel"):
        notes.append(f"channel {data['channel']}")
    if message.get("reply_to") is not None:
        notes.append(f"re #{message['reply_to']}")
    if data.get("task_id") is not None:
        notes.append(f"task #{data['task_id']}")
    if data.get("priority") not in (None, "normal"):
        notes.append(str(data["priority"]))
    return text + (f" ({', '.join(notes)})" if notes else "")


def _task_updated(task: str, data: dict[str, Any]) -> str:
    status, previous = data.get("status"), data.get("previous")
    moved = previous and previous != status
    text = f"{task} {previous} → {status}" if moved else f"{task} {status}"
    if data.get("progress") is not None:
        text += f" {data['progress']}%"
    if data.get("note"):
        text += f" {quote(str(data['note']))}"
    if data.get("result"):
        text += f" result: {quote(str(data['result']))}"
    return text


def _lease(expires: object) -> str:
    if not isinstance(expires, int | float):
        return ""
    return f", lease until {render.clock(datetime.fromtimestamp(expires, UTC))}"


def _value(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def quote(text: str, width: int = QUOTE_CHARS) -> str:
    """The first line of ``text`` in quotes, cut to ``width`` characters."""
    line = (text.strip().splitlines() or [""])[0].strip()
    return f'"{line[: width - 1]}…"' if len(line) > width else f'"{line}"'


def clean(text: str) -> str:
    """``text`` on one line without control characters (a message cannot steer the
    terminal)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


@contextlib.contextmanager
def reconnect_notes() -> Iterator[None]:
    """While it lasts, the client's notes about a dropped stream (and its reconnects)
    go to stderr as one line each."""
    logger = logging.getLogger("relaybus.client")
    handler = _Note()
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class _Note(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        render.note(f"relaybus: watch: {clean(record.getMessage())}")
