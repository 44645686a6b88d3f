"""Target expressions: who a message goes to.

``alice`` (an agent id), ``tag:backend``, ``cap:review``, ``label:test writer``
or ``broadcast``; an optional channel narrows any of them to agents
subscribed to it (an agent with no channels hears every channel).

Every target but a single agent id is resolved set-based, in SQL: the rule is a
WHERE clause over ``agents`` (membership in the JSON arrays of tags, capabilities
and channels with ``json_each`` on SQLite and the ``?`` operator on PostgreSQL),
and :func:`deliver` writes a message's deliveries with one ``INSERT ... SELECT`` and
reads the recipients back from the message's range of the deliveries' key: no agent's
JSON is decoded in Python and no row is bound one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from ..bounds import MAX_LABEL_CHARS
from ..errors import InvalidInput, NotFound
from ..store.schema import agents, deliveries, joined_ids
from ..store.statements import register, run
from .common import NAME_RE, did_you_mean

Kind = Literal["agent", "tag", "cap", "label", "broadcast"]
PREFIXES: dict[str, Kind] = {"tag": "tag", "cap": "cap", "label": "label"}
FORMS = "an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast"


#: The SQL functions' type: not ``sa.Boolean``, for which SQLite (no boolean type) would
#: render ``... = 1`` after each of them in a WHERE clause.
_UNTYPED = cast("sa.types.TypeEngine[bool]", sa.types.NullType())


class json_has(sa.sql.functions.FunctionElement[bool]):  # noqa: N801 (a SQL function)
    """``json_has(column, value)``: the JSON array in ``column`` holds the string
    ``value``: ``EXISTS (SELECT 1 FROM json_each(column) WHERE value = ...)`` on
    SQLite, ``column ? value`` on PostgreSQL (JSONB: top-level string elements)."""

    type = _UNTYPED
    inherit_cache = True
    name = "json_has"


class json_empty(sa.sql.functions.FunctionElement[bool]):  # noqa: N801 (a SQL function)
    """``json_empty(column)``: the JSON array in ``column`` has no element."""

    type = _UNTYPED
    inherit_cache = True
    name = "json_empty"


@compiles(json_has)
def _json_has(element: json_has, compiler: Any, **kw: Any) -> str:
    column, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})"


@compiles(json_has, "postgresql")
def _json_has_postgresql(element: json_has, compiler: Any, **kw: Any) -> str:
    column, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ? {value})"


@compiles(json_empty)
def _json_empty(element: json_empty, compiler: Any, **kw: Any) -> str:
    return f"(json_array_length({compiler.process(element.clauses, **kw)}) = 0)"


@compiles(json_empty, "postgresql")
def _json_empty_postgresql(element: json_empty, compiler: Any, **kw: Any) -> str:
    return f"(jsonb_array_length({compiler.process(element.clauses, **kw)}) = 0)"


def _matches(kind: Kind) -> sa.ColumnElement[bool]:
    """The agents a set-based ``kind`` matches, given the target's value as ``:value``."""
    value = sa.bindparam("value", type_=sa.String())
    if kind == "tag":
        return json_has(agents.c.tags, value)
    if kind == "cap":
        return json_has(agents.c.capabilities, value)
    if kind == "label":
        return agents.c.label == value
    return sa.true()  # broadcast


def _reached(kind: Kind, channel: bool) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause of the agents a target reaches: of workspace ``:ws``,
    matched, hearing ``:channel`` (with a channel) and not ``:sender``."""
    rule = [agents.c.workspace == sa.bindparam("ws"), _matches(kind)]
    if channel:
        heard = sa.bindparam("channel", type_=sa.String())
        rule.append(sa.or_(json_empty(agents.c.channels), json_has(agents.c.channels, heard)))
    rule.append(agents.c.id != sa.bindparam("sender", type_=sa.String()))
    return rule


def _insert(kind: Kind, channel: bool) -> sa.Insert:
    """One delivery of message ``:mid`` per agent the target reaches.

    On SQLite it is ``INSERT OR IGNORE``: a plain ``INSERT`` of many rows after
    other writes of the same transaction could fail half-way on a constraint, so
    SQLite first copies every page it changes into a *statement journal*, a
    temporary file (``etilqs_*``), to undo that statement alone (sqlite.org,
    "Temporary Files Used By SQLite", 2.5). A broadcast changes one leaf page of
    the unread index per recipient. Nothing can conflict here (the message is new,
    the agents' keys are not null), so ignoring conflicts changes no row and skips
    the journal.

    Without ``RETURNING``: SQLite runs a ``RETURNING`` statement to its end first,
    keeping every returned row in a temporary table, and then hands them out; for
    1,000 recipients that was 1.2 of the statement's 3.2 ms, where reading the ids
    back (:data:`_RECIPIENTS`) takes about 0.35 (docs/benchmarks.md).
    """
    mid = sa.bindparam("mid", type_=deliveries.c.message_id.type)
    chosen = sa.select(agents.c.workspace, agents.c.id, sa.cast(mid, mid.type))
    return (
        deliveries.insert()
        .prefix_with("OR IGNORE", dialect="sqlite")
        .from_select(
            ["workspace", "agent_id", "message_id"], chosen.where(*_reached(kind, channel))
        )
    )


#: Set-based targets' fan-out by (kind, with a channel), registered for the fast path:
#: SQLAlchemy's handling of the returned ids (1,000 rows for a broadcast to 1,000) was
#: about 0.4 ms of a 5 ms broadcast.
_SET_KINDS: tuple[Kind, ...] = ("tag", "cap", "label", "broadcast")
_INSERTS = {
    (k, c): register(f"deliveries.fan_out.{k}{'+channel' if c else ''}", _insert(k, c))
    for k in _SET_KINDS
    for c in (False, True)
}
#: A message's recipients as one value (:func:`~relaybus.store.schema.joined_ids`): a
#: contiguous range of the deliveries' key, which leads with the message id (unique
#: across workspaces), fetched as one string to split, not a thousand rows (each a
#: tuple for the garbage collector to track).
_RECIPIENTS = register(
    "deliveries.recipients",
    sa.select(joined_ids(deliveries.c.agent_id)).where(
        deliveries.c.message_id == sa.bindparam("id")
    ),
)
_IDS = {
    (k, c): sa.select(agents.c.id).where(*_reached(k, c)) for k in _SET_KINDS for c in (False, True)
}
#: The agents a target matches, sender and channels aside (at most two: enough to
#: tell "only the sender" from "none on that channel").
_MATCHED = {
    k: sa.select(agents.c.id).where(agents.c.workspace == sa.bindparam("ws"), _matches(k)).limit(2)
    for k in _SET_KINDS
}

#: A direct message's one row: a registered statement on the fast path.
_DIRECT = {
    channel: register(
        f"agents.target.agent{'+channels' if channel else ''}",
        sa.select(agents.c.id, *([agents.c.channels] if channel else [])).where(
            agents.c.workspace == sa.bindparam("ws"), agents.c.id == sa.bindparam("aid")
        ),
    )
    for channel in (False, True)
}


@dataclass(frozen=True)
class Target:
    """A parsed target expression."""

    kind: Kind
    value: str

    def __str__(self) -> str:
        return self.value if self.kind in ("agent", "broadcast") else f"{self.kind}:{self.value}"


def parse_target(expression: str) -> Target:
    """Parse a target expression.

    Raises:
        InvalidInput: an empty expression, an unknown ``prefix:``, or a
            malformed name (the message lists the valid forms).
    """
    text = expression.strip() if isinstance(expression, str) else ""
    if text == "broadcast":
        return Target("broadcast", "broadcast")
    prefix, sep, rest = text.partition(":")
    if sep:
        kind = PREFIXES.get(prefix)
        value = rest.strip()
        if kind is None:
            raise InvalidInput(
                f"unknown target prefix {prefix + ':'!r} in {expression!r}: use {FORMS}",
                target=expression,
            )
        if kind == "label" and 0 < len(value) <= MAX_LABEL_CHARS:
            return Target(kind, value)
        if kind != "label" and NAME_RE.fullmatch(value):
            return Target(kind, value)
        raise InvalidInput(f"malformed target {expression!r}: use {FORMS}", target=expression)
    if NAME_RE.fullmatch(text):
        return Target("agent", text)
    raise InvalidInput(f"malformed target {expression!r}: use {FORMS}", target=expression)


def is_set(target: Target) -> bool:
    """Whether ``target`` may reach several agents (every kind but an agent id):
    :func:`deliver` writes its deliveries set-based."""
    return target.kind != "agent"


def resolve(
    conn: Connection, workspace: str, target: Target, channel: str | None, sender: str
) -> list[str]:
    """The agent ids ``target`` reaches now, narrowed by ``channel``, without the sender.

    Returns:
        the ids, in no particular order.

    Raises:
        NotFound: the target matches nobody (the message names the target and
            suggests close matches).
    """
    if is_set(target):
        params = _params(workspace, target, channel, sender)
        reached = list(
            conn.execute(_IDS[(target.kind, channel is not None)], params).scalars().all()
        )
        if not reached:
            raise _nobody(conn, workspace, target, channel, sender)
        return reached
    rows = run(conn, _DIRECT[channel is not None], {"ws": workspace, "aid": target.value})
    if not rows:
        raise _nobody(conn, workspace, target, channel, sender)
    (row,) = rows
    if row[0] == sender:
        raise _only_sender(target)
    if channel is not None and row[1] and channel not in row[1]:
        raise _not_on(target, channel)
    return [row[0]]


def deliver(
    conn: Connection,
    workspace: str,
    target: Target,
    channel: str | None,
    sender: str,
    message_id: int,
) -> list[str]:
    """Write the deliveries of message ``message_id`` to the agents a set-based
    ``target`` (see :func:`is_set`) reaches now, narrowed by ``channel``, without
    the sender: one ``INSERT ... SELECT`` in ``conn``'s transaction, then the
    recipients read back from the message's key range.

    Returns:
        the recipients' agent ids, sorted.

    Raises:
        NotFound: the target reaches nobody, as :func:`resolve` (nothing was written).
        ValueError: ``target`` is an agent id (use :func:`resolve`).
    """
    if not is_set(target):
        raise ValueError(f"{target} is not a set-based target")
    params = {**_params(workspace, target, channel, sender), "mid": message_id}
    run(conn, _INSERTS[(target.kind, channel is not None)], params)
    reached = recipients(conn, message_id)
    if not reached:
        raise _nobody(conn, workspace, target, channel, sender)
    return reached


def recipients(conn: Connection, message_id: int) -> list[str]:
    """The agent ids message ``message_id`` was delivered to, sorted by code point
    (SQLite gives them in the key's order, a linear pass for the sort; PostgreSQL's
    ``string_agg`` in any)."""
    ((joined,),) = run(conn, _RECIPIENTS, {"id": message_id})
    return sorted(joined.split(",")) if joined else []


def _params(workspace: str, target: Target, channel: str | None, sender: str) -> dict[str, Any]:
    params: dict[str, Any] = {"ws": workspace, "sender": sender}
    if target.kind != "broadcast":
        params["value"] = target.value
    if channel is not None:
        params["channel"] = channel
    return params


def _nobody(
    conn: Connection, workspace: str, target: Target, channel: str | None, sender: str
) -> NotFound:
    # Why a target reaches nobody (read only on that path): it matches no agent, only
    # the sender, or no matched agent listens on the channel.
    if is_set(target):
        params = {"ws": workspace} | ({} if target.kind == "broadcast" else {"value": target.value})
        found = list(conn.execute(_MATCHED[target.kind], params).scalars().all())
    else:
        found = [r[0] for r in run(conn, _DIRECT[False], {"ws": workspace, "aid": target.value})]
    if found and all(agent == sender for agent in found):
        return _only_sender(target)
    if found and channel is not None:
        return _not_on(target, channel)
    return NotFound(
        f"target {str(target)!r} matches no agent" + _suggest(conn, workspace, target),
        target=str(target),
    )


def _only_sender(target: Target) -> NotFound:
    return NotFound(f"target {str(target)!r} matches only the sender", target=str(target))


def _not_on(target: Target, channel: str) -> NotFound:
    return NotFound(
        f"no agent matched by {str(target)!r} listens on channel {channel!r}",
        target=str(target),
        channel=channel,
    )


def _suggest(conn: Connection, workspace: str, target: Target) -> str:
    if target.kind == "broadcast":
        return " (no other agent is registered)"
    rows = conn.execute(
        sa.select(agents.c.id, agents.c.label, agents.c.tags, agents.c.capabilities).where(
            agents.c.workspace == workspace
        )
    ).all()
    if target.kind == "agent":
        return did_you_mean(target.value, [r.id for r in rows])
    if target.kind == "label":
        return did_you_mean(target.value, [r.label for r in rows if r.label])
    field = "tags" if target.kind == "tag" else "capabilities"
    names = [n for r in rows for n in getattr(r, field)]
    return did_you_mean(target.value, names, prefix=f"{target.kind}:")
