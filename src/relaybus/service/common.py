"""Helpers every service module shares: the event log append, agent fencing, row mapping."""

from __future__ import annotations

import contextlib
import difflib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_ID, MAX_LABEL_CHARS, MAX_LIMIT, MAX_META_DEPTH
from ..bounds import NAME_RE as NAME_RE  # re-exported: bounds holds the one pattern
from ..errors import Conflict, InvalidInput, NotFound, TooLarge
from ..models import Event, Message
from ..store import Store
from ..store.schema import agents, events
from ..store.statements import register, run
from .outbox import CALLBACK_EVENTS, queue_callback


class ServiceBase:
    """State every operation needs: the store and its settings."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = store.settings

    def now(self) -> float:
        """The store's clock, float Unix seconds. Read it inside the write
        transaction, so that times follow the order of ids."""
        return self.store.clock()


def check_name(kind: str, value: str) -> str:
    """Validate an agent id, tag, capability or channel name.

    Raises:
        InvalidInput: ``value`` is empty, too long or has other characters.
    """
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {kind} {value!r}: use 1-128 letters, digits and . _ - @ /, "
            "starting with a letter or digit",
            field=kind,
            value=value,
        )
    return value


def check_names(kind: str, values: list[str] | tuple[str, ...] | None) -> list[str]:
    """Validate a list of names and drop duplicates, keeping order."""
    return list(dict.fromkeys(check_name(kind, v) for v in values or ()))


def check_id(field: str, value: int, *, minimum: int = 1) -> int:
    """Validate a message, task or event id, a cursor or an epoch: an integer
    between ``minimum`` (1 for ids, 0 for cursors and epochs) and
    :data:`~relaybus.bounds.MAX_ID`, so that no database is asked about a number
    it cannot hold.

    Raises:
        InvalidInput: not an integer (booleans are not), or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number, not {value!r}", field=field)
    if not minimum <= value <= MAX_ID:
        raise InvalidInput(
            f"{field} must be between {minimum} and {MAX_ID}, not {value}", field=field
        )
    return value


def check_ids(field: str, values: Iterable[int]) -> list[int]:
    """Validate up to :data:`~relaybus.bounds.MAX_LIMIT` message ids (see :func:`check_id`).

    Raises:
        InvalidInput: more than the limit, or an id out of range.
    """
    if isinstance(values, str | bytes | Mapping):
        raise InvalidInput(f"{field} must be a list of ids", field=field)
    try:
        found = list(values)
    except TypeError:
        raise InvalidInput(f"{field} must be a list of ids", field=field) from None
    if len(found) > MAX_LIMIT:
        raise InvalidInput(f"at most {MAX_LIMIT} {field} at once, not {len(found)}", field=field)
    return [check_id(field, v) for v in found]


E = TypeVar("E", bound=StrEnum)


def check_choice(kind: type[E], what: str, value: E | str) -> E:
    """``value`` as a member of the string enum ``kind`` (``what`` names it in
    the error, e.g. ``"priority"``).

    Raises:
        InvalidInput: not one of its values (the message lists them).
    """
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidInput(f"unknown {what} {value!r}: use one of {choices}") from None


def check_limit(limit: int, maximum: int = MAX_LIMIT) -> int:
    """Validate a listing's ``limit``: a whole number of items, 1 to ``maximum``.

    Raises:
        InvalidInput: not an integer, or out of range.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, not {limit!r}", field="limit")
    return limit


def check_timeout(seconds: float) -> float:
    """Validate a wait: a number of seconds (negative waits not at all).

    Returns:
        ``seconds`` as a float, at least 0 (infinity: no deadline).

    Raises:
        InvalidInput: not a number, or NaN.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInput(f"a wait is a number of seconds, not {seconds!r}", field="timeout")
    if isinstance(seconds, int):
        # An int past the floats (2**2000) is as good as infinity.
        return max(float(seconds), 0.0) if seconds < 2**1000 else math.inf
    if math.isnan(seconds):
        raise InvalidInput("a wait is a number of seconds, not NaN", field="timeout")
    return max(seconds, 0.0)


def check_days(field: str, days: float) -> float:
    """Validate a number of days (retention): 0 or more, not NaN; infinity is "for ever".

    Raises:
        InvalidInput: not a number, negative or NaN.
    """
    if isinstance(days, bool) or not isinstance(days, int | float):
        raise InvalidInput(f"{field} is a number of days, not {days!r}", field=field)
    value = math.inf if isinstance(days, int) and days >= 2**1000 else float(days)
    if math.isnan(value) or value < 0:
        raise InvalidInput("retention is a number of days, 0 or more", field=field)
    return value


def check_text(field: str, value: str) -> str:
    """Validate free text (a body, subject, label, note, meta string) so that both
    dialects store it: UTF-8 encodable and without NUL, which PostgreSQL refuses.

    Raises:
        InvalidInput: ``value`` is not a str, has a NUL character or an unpaired
            surrogate.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} has an unpaired surrogate", field=field) from None
    return value


def check_label(label: str) -> str:
    """Validate an agent label: 1-200 characters of text.

    Raises:
        InvalidInput: empty, longer than 200 characters, or not storable text.
    """
    check_text("label", label)
    if not 0 < len(label) <= MAX_LABEL_CHARS:
        raise InvalidInput(f"a label has 1-{MAX_LABEL_CHARS} characters", field="label")
    return label


def check_meta(meta: Mapping[str, Any] | None, limit: int) -> dict[str, Any]:
    """Validate a ``meta`` value: a JSON object (text keys; null, booleans, finite
    numbers, text, lists and objects as values) of at most ``limit`` bytes as JSON.

    Nested at most :data:`~relaybus.bounds.MAX_META_DEPTH` deep (checked first,
    without recursion, so that no depth reaches Python's recursion limit).

    Returns:
        the object as it will be stored and read back (tuples become lists);
        ``{}`` for ``None``.

    Raises:
        InvalidInput: not a mapping, nested too deep, or a value JSON cannot hold.
        TooLarge: over ``limit`` bytes as JSON.
    """
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidInput("meta must be a JSON object", field="meta")
    check_depth(meta)
    _check_json("meta", meta)
    encoded = json.dumps(dict(meta), allow_nan=False)
    if len(encoded) > limit:
        raise TooLarge(f"meta is {len(encoded)} bytes as JSON; the limit is {limit}", limit=limit)
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def check_depth(meta: object, maximum: int = MAX_META_DEPTH) -> None:
    """Refuse a ``meta`` value nested more than ``maximum`` objects and lists deep
    (``{"a": 1}`` is 1 deep). Iterative: any depth is measured without recursion.

    Raises:
        InvalidInput: nested deeper than ``maximum``.
    """
    stack: list[tuple[object, int]] = [(meta, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Iterable[object] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > maximum:
            raise InvalidInput(
                f"meta is nested more than {maximum} levels deep; the limit is {maximum}",
                field="meta",
                limit=maximum,
            )
        stack.extend((child, depth + 1) for child in children)


def _check_json(path: str, value: object) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{path} is {value}: JSON numbers are finite", field="meta")
        return
    if isinstance(value, str):
        check_text(path, value)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path} has a key {key!r}: JSON keys are text", field="meta")
            check_text(f"a key of {path}", key)
            _check_json(f"{path}.{key}", item)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(f"{path}[{index}]", item)
        return
    raise InvalidInput(f"{path} is a {type(value).__name__}, not a JSON value", field="meta")


def append_event(
    conn: Connection,
    workspace: str,
    kind: str,
    now: float,
    agent_id: str | None = None,
    **data: Any,
) -> int:
    """Append one entry to the event log in the caller's transaction; returns its id."""
    params = {
        "workspace": workspace,
        "kind": kind,
        "agent_id": agent_id,
        "data": data,
        "created_at": now,
    }
    event_id = int(run(conn, _INSERT_EVENT, params)[0][0])
    if kind in CALLBACK_EVENTS:
        callback_id = queue_callback(conn, workspace, event_id, kind, data, now)
        if callback_id is not None:
            # Marked on the event, so that the servers' hubs wake their callback
            # senders for it alone (an integration's task), not for every task event.
            data["callback_id"] = callback_id
            conn.execute(events.update().where(events.c.id == event_id).values(data=data))
    appended: list[dict[str, Any]] | None = conn.info.get(_APPENDED)
    if appended is not None:
        params["id"] = event_id
        appended.append(params)
    return event_id


#: ``conn.info`` key of the events :func:`recording_events` collects.
_APPENDED = "relaybus.appended"


@contextlib.contextmanager
def recording_events(conn: Connection) -> Iterator[list[dict[str, Any]]]:
    """Collect the events :func:`append_event` appends in ``conn`` while the block
    runs: a list of the inserted rows (``id``, ``workspace``, ``kind``,
    ``agent_id``, ``data``, ``created_at``), in id order. A caller that rolls part
    of the transaction back (a savepoint) truncates the list to its length before
    that part (see :func:`appended_count`); :func:`logged_events` makes the
    collected rows :class:`~relaybus.models.Event` models once committed."""
    appended: list[dict[str, Any]] = []
    conn.info[_APPENDED] = appended
    try:
        yield appended
    finally:
        conn.info.pop(_APPENDED, None)


def appended_count(conn: Connection) -> int | None:
    """How many events :func:`recording_events` holds for ``conn`` (None: none is
    recording), to :func:`forget_appended` those of a part rolled back."""
    appended: list[dict[str, Any]] | None = conn.info.get(_APPENDED)
    return None if appended is None else len(appended)


def forget_appended(conn: Connection, count: int | None) -> None:
    """Drop the events recorded for ``conn`` past the first ``count`` (a savepoint
    that held them was rolled back)."""
    appended: list[dict[str, Any]] | None = conn.info.get(_APPENDED)
    if appended is not None and count is not None:
        del appended[count:]


def logged_events(rows: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Rows :func:`recording_events` collected, as the log reads them back: each
    validated as an :class:`~relaybus.models.Event` (what ``EventOps.log_tail``
    returns).

    The rows' ``data`` is used as given, not passed through JSON as the column
    stores it: the service builds event data of JSON values only (objects with
    string keys, arrays as lists, strings, numbers, booleans, null; enums as their
    values), which JSON gives back equal. The round trip was a quarter of a
    millisecond for a broadcast's 1,000 recipients.
    ``tests/service/test_send_group.py`` holds the events equal to the log's.
    """
    return [Event.model_validate(row) for row in rows]


_INSERT_EVENT = register("events.append", events.insert().returning(events.c.id))
_TOUCH = register(
    "agents.touch",
    agents.update()
    .where(agents.c.workspace == sa.bindparam("ws"), agents.c.id == sa.bindparam("aid"))
    .values(last_seen_at=sa.bindparam("now"))
    .returning(agents.c.epoch, agents.c.status),
)


def touch_agent(
    conn: Connection, workspace: str, agent_id: str, epoch: int | None, now: float
) -> int:
    """Fence and mark an acting agent as seen; returns its current epoch.

    Runs inside the caller's write transaction, so a refused call changes nothing.

    Raises:
        NotFound: no agent ``agent_id`` in ``workspace`` (with close ids).
        InvalidInput: ``epoch`` is not a whole number from 0 to ``MAX_ID``.
        Conflict: ``epoch`` is given and older (or newer) than the agent's epoch:
            another instance registered under this id since.
    """
    if epoch is not None:
        check_id("epoch", epoch, minimum=0)
    rows = run(conn, _TOUCH, {"ws": workspace, "aid": agent_id, "now": now})
    if not rows:
        raise unknown_agent(
            conn, workspace, agent_id, f" in workspace {workspace!r}: register it first"
        )
    current, status = int(rows[0][0]), rows[0][1]
    fence(agent_id, epoch, current)
    if status == "offline":
        # Acting is proof of life: bring a swept or self-declared offline agent back.
        conn.execute(
            agents.update()
            .where(agents.c.workspace == workspace, agents.c.id == agent_id)
            .values(status="online")
        )
        append_event(conn, workspace, "agent.online", now, agent_id)
    return current


def fence(agent_id: str, epoch: int | None, current: int) -> None:
    """Refuse a call that carries an ``epoch`` other than the agent's ``current`` one
    (``None``: no fencing asked).

    Raises:
        Conflict: ``epoch`` is given and is not ``current``: another instance
            registered under this id since.
    """
    if epoch is not None and epoch != current:
        raise Conflict(
            f"stale epoch {epoch} for agent {agent_id!r} (current {current}): another instance "
            "registered under this id; register again to act as it",
            agent=agent_id,
            epoch=epoch,
            current_epoch=current,
        )


_AGENT_IDS_SQL = sa.select(agents.c.id).where(agents.c.workspace == sa.bindparam("ws"))
_AGENT_IDS = register("agents.ids", _AGENT_IDS_SQL)
_AGENT_EXISTS = register("agents.exists", _AGENT_IDS_SQL.where(agents.c.id == sa.bindparam("aid")))


def require_agent(conn: Connection, workspace: str, agent_id: str) -> None:
    """Check that ``agent_id`` is registered in ``workspace``, in the caller's transaction.

    Raises:
        NotFound: it is not (the message suggests close ids).
    """
    if not run(conn, _AGENT_EXISTS, {"ws": workspace, "aid": agent_id}):
        raise unknown_agent(conn, workspace, agent_id)


def unknown_agent(conn: Connection, workspace: str, agent_id: str, hint: str = "") -> NotFound:
    """The error for an agent id nobody registered: ``no agent 'x'`` plus ``hint``
    and the close ids of ``workspace`` (``(did you mean 'y'?)``)."""
    ids = [row[0] for row in run(conn, _AGENT_IDS, {"ws": workspace})]
    return NotFound(f"no agent {agent_id!r}{hint}" + did_you_mean(agent_id, ids), agent=agent_id)


def message_from_row(
    row: Mapping[Any, Any],
    *,
    recipients: list[str] | None = None,
    read_at: float | None = None,
    delivered_at: float | None = None,
) -> Message:
    """A ``messages`` row (plus optional delivery state) as a :class:`Message`."""
    return Message.model_validate(
        message_fields(row, recipients=recipients, read_at=read_at, delivered_at=delivered_at)
    )


def message_fields(
    row: Mapping[Any, Any],
    *,
    recipients: list[str] | None = None,
    read_at: float | None = None,
    delivered_at: float | None = None,
) -> dict[str, Any]:
    """The fields of :func:`message_from_row`'s message, not yet validated: for
    validating many at once (``TypeAdapter(list[Message])``)."""
    return {
        "id": row["id"],
        "workspace": row["workspace"],
        "sender": row["sender"],
        "to": row["target"],
        "channel": row["channel"],
        "subject": row["subject"],
        "body": row["body"],
        "reply_to": row["reply_to"],
        "thread_id": row["thread_id"] if row["thread_id"] is not None else row["id"],
        "priority": row["priority"],
        "meta": row["meta"],
        "task_id": row["task_id"],
        "created_at": row["created_at"],
        "recipients": recipients or [],
        "delivered_at": delivered_at,
        "read_at": read_at,
    }


def did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    """`` (did you mean 'x', 'y'?)`` for close matches of ``word``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(prefix + c) for c in close)}?)" if close else ""
