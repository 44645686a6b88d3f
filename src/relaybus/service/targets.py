"""Target expressions: who a message goes to.

``alice`` (an agent id), ``tag:backend``, ``cap:review``, ``label:test writer``
or ``broadcast``; an optional channel narrows any of them to agents
subscribed to it (an agent with no channels hears every channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_LABEL_CHARS
from ..errors import InvalidInput, NotFound
from ..store.schema import agents
from ..store.statements import Statement, register, run
from .common import NAME_RE, did_you_mean

Kind = Literal["agent", "tag", "cap", "label", "broadcast"]
PREFIXES: dict[str, Kind] = {"tag": "tag", "cap": "cap", "label": "label"}
FORMS = "an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast"


#: The column a target kind matches on (None: every agent, or the id itself).
_MATCHED: dict[Kind, sa.ColumnElement[Any] | None] = {
    "agent": None,
    "broadcast": None,
    "tag": agents.c.tags,
    "cap": agents.c.capabilities,
    "label": agents.c.label,
}


def _statement(kind: Kind, channel: bool) -> Statement:
    """The SELECT of a target kind: the id, the column it matches on and, with a
    channel, the agent's channels. Only those columns: a broadcast to 1,000 agents
    decodes no JSON at all, where reading every list column decoded 3,000 arrays."""
    matched = _MATCHED[kind]
    columns = [agents.c.id, *([matched] if matched is not None else [])]
    if channel:
        columns.append(agents.c.channels)
    sql = sa.select(*columns).where(agents.c.workspace == sa.bindparam("ws"))
    if kind == "agent":
        sql = sql.where(agents.c.id == sa.bindparam("aid"))
    return register(f"agents.target.{kind}{'+channels' if channel else ''}", sql)


_SELECTS = {
    (kind, channel): _statement(kind, channel) for kind in _MATCHED for channel in (False, True)
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


def resolve(
    conn: Connection, workspace: str, target: Target, channel: str | None, sender: str
) -> list[str]:
    """The agent ids ``target`` reaches now, narrowed by ``channel``, without the sender.

    Raises:
        NotFound: the target matches nobody (the message names the target and
            suggests close matches).
    """
    params = {"ws": workspace, "aid": target.value}
    rows = run(conn, _SELECTS[(target.kind, channel is not None)], params)
    # Each row: (id, [the matched column], [channels]).
    value = target.value

    def matches(row: tuple[Any, ...]) -> bool:
        if target.kind in ("tag", "cap"):
            return value in row[1]
        if target.kind == "label":
            return bool(row[1] == value)
        return True

    def hears(row: tuple[Any, ...]) -> bool:
        return channel is None or not row[-1] or channel in row[-1]

    found = [r for r in rows if matches(r)]
    reached = [r[0] for r in found if hears(r) and r[0] != sender]
    if reached:
        return reached
    if found and all(r[0] == sender for r in found):
        raise NotFound(f"target {str(target)!r} matches only the sender", target=str(target))
    if found:
        raise NotFound(
            f"no agent matched by {str(target)!r} listens on channel {channel!r}",
            target=str(target),
            channel=channel,
        )
    raise NotFound(
        f"target {str(target)!r} matches no agent" + _suggest(conn, workspace, target),
        target=str(target),
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
