"""Human and JSON output of the CLI.

``--json`` prints ``model_dump(mode="json")`` of the objects (lists as arrays): the
wire shape, which the hot commands get as it is from the warm relay
(:mod:`relaybus.client.warm_json`) and otherwise from the SDK's models, so both print
the same from the same JSON objects (:data:`JSON`; times are ISO 8601 strings).
Human output is tables for lists and one-line confirmations; on a terminal the
tables are drawn by rich, otherwise (pipes, agent hooks) they are plain
columns separated by two spaces, so ``grep``/``awk`` and language models read
them easily. Notes that are not data ("no unread messages") go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pydantic import BaseModel

#: One object of the API (an agent, a message, a task...) in its wire shape.
JSON = dict[str, Any]

#: Recipients listed by name in a send confirmation before "+N more".
MAX_NAMES = 5
#: Units of :func:`ago`, largest first (seconds each).
UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def dump(model: BaseModel) -> dict[str, Any]:
    """A model's wire shape (``model_dump(mode="json")``)."""
    return model.model_dump(mode="json")


def emit_models(models: Iterable[BaseModel]) -> None:
    """Print models as a JSON array."""
    emit_json([dump(m) for m in models])


def result(data: JSON, line: str, *, as_json: bool) -> None:
    """The outcome of one change: ``data`` (an object's wire shape) as JSON with
    ``--json``, else the confirmation ``line`` (e.g. ``released task #3; it is open
    again``)."""
    if as_json:
        emit_json(data)
    else:
        click.echo(line)


def note(text: str) -> None:
    """A remark for the person at the terminal, on stderr (keeps stdout data-only)."""
    click.echo(text, err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under headers: a rich table on a terminal, plain columns otherwise."""
    cells = [[" ".join(str(c).split()) for c in row] for row in rows]
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        grid = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
        for header in headers:
            grid.add_column(header, overflow="fold")
        for row in cells:
            grid.add_row(*(Text(c) for c in row))  # Text: no rich markup in user data
        Console().print(grid)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [[h.upper() for h in headers], *cells]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def when(value: datetime | str | None) -> datetime | None:
    """A time of the API: an ISO 8601 string of the wire shape (or a datetime) as an
    aware datetime; ``None`` stays ``None``."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    """``value`` (see :func:`when`) relative to now: ``12s ago``, ``in 9m``,
    ``3d ago``; ``-`` for None."""
    moment = when(value)
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    unit, size = next((u, s) for u, s in UNITS if seconds >= s)
    amount = f"{int(seconds // size)}{unit}"
    return f"in {amount}" if future else f"{amount} ago"


def clock(value: datetime | str | None) -> str:
    """``value`` (see :func:`when`) in local time: ``14:02:11`` today,
    ``2025-06-14 14:02`` before."""
    moment = when(value)
    if moment is None:
        return "-"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def names(items: Sequence[str]) -> str:
    """``bob, carol`` or ``a, b, c, d, e +3 more``; ``-`` when empty."""
    if not items:
        return "-"
    shown = ", ".join(items[:MAX_NAMES])
    return shown if len(items) <= MAX_NAMES else f"{shown} +{len(items) - MAX_NAMES} more"


def message_block(msg: JSON, *, show_read: bool = False) -> str:
    """A message (its wire shape) as a header line, an optional subject line and its
    body, indented.

    ``#12 alice → cap:review · high · task #3 · re #10 · 14:02:11 (2m ago)``
    """
    parts = [f"#{msg['id']} {msg['sender']} → {msg['to']}"]
    if msg.get("channel"):
        parts.append(f"channel {msg['channel']}")
    if msg["priority"] != "normal":
        parts.append(msg["priority"])
    if msg.get("task_id") is not None:
        parts.append(f"task #{msg['task_id']}")
    pair = (msg.get("meta") or {}).get("pair")
    if isinstance(pair, int) and not isinstance(pair, bool):
        parts.append(f"pair {pair}")
    if msg.get("reply_to") is not None:
        parts.append(f"re #{msg['reply_to']}")
    parts.append(f"{clock(msg['created_at'])} ({ago(msg['created_at'])})")
    if show_read and msg.get("read_at") is None:
        parts.append("unread")
    lines = [click.style(" · ".join(parts), bold=True)]
    if msg.get("subject"):
        lines.append(f"  Subject: {msg['subject']}")
    lines.extend(f"  {line}" for line in (msg["body"].splitlines() or [""]))
    return "\n".join(lines)


def messages(found: Sequence[JSON], *, show_read: bool = False) -> None:
    """Print message blocks (wire shapes) separated by blank lines."""
    click.echo("\n\n".join(message_block(m, show_read=show_read) for m in found))


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """Print ``name  value`` lines with the names aligned."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")
