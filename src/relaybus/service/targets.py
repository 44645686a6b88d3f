"""Target expressions: who a message goes to.

``alice`` (an agent id), ``tag:backend``, ``cap:review``, ``label:test writer``
or ``broadcast``; an optional channel narrows any of them to agents
subscribed to it (an agent with no channels hears every channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_LABEL_CHARS
from ..errors import InvalidInput, NotFound
from ..store.schema import agents
from ..store.statements import register, run
from .common import NAME_RE, did_you_mean

Kind = Literal["agent", "tag", "cap", "label", "broadcast"]
PREFIXES: dict[str, Kind] = {"tag": "tag", "cap": "cap", "label": "label"}
FORMS = "an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast"


_COLUMNS = (agents.c.id, agents.c.label, agents.c.tags, agents.c.capabilities, agents.c.channels)
_ALL_SQL = sa.select(*_COLUMNS).where(agents.c.workspace == sa.bindparam("ws"))
_ALL = register("agents.targets", _ALL_SQL)
_ONE = register("agents.target", _ALL_SQL.where(agents.c.id == sa.bindparam("aid")))


class _Candidate(NamedTuple):
    id: str
    label: str | None
    tags: list[str]
    capabilities: list[str]
    channels: list[str]


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
    query = _ONE if target.kind == "agent" else _ALL
    rows = [_Candidate(*r) for r in run(conn, query, params)]

    def matches(row: _Candidate) -> bool:
        if target.kind == "tag":
            return target.value in row.tags
        if target.kind == "cap":
            return target.value in row.capabilities
        if target.kind == "label":
            return row.label == target.value
        return True

    def hears(row: _Candidate) -> bool:
        return channel is None or not row.channels or channel in row.channels

    found = [r for r in rows if matches(r)]
    reached = [r.id for r in found if hears(r) and r.id != sender]
    if reached:
        return reached
    if found and all(r.id == sender for r in found):
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
