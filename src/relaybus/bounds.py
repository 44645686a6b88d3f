"""The bounds and patterns of every input, in one place.

The service checks its arguments against these, and the HTTP API's models and
parameters state the same values in the OpenAPI document, so that a request
the document calls valid is one the service accepts (and a bad one is refused
before it reaches the database: SQLite and PostgreSQL integers end at 2^63-1,
past which drivers raise ``OverflowError``).

Only :mod:`re` is imported: the CLI, hooks and clients read this module too.
"""

from __future__ import annotations

import re

#: Agent ids, tags, capabilities and channels: a letter or digit, then up to
#: 127 of letters, digits and ``. _ - @ /``.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@/-]{0,127}"
NAME_RE = re.compile(NAME_PATTERN)
#: A workspace name: like an agent id, at most 64 characters (the column's width).
WORKSPACE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@/-]{0,63}"
#: Text every database stores: no NUL character (PostgreSQL refuses it).
TEXT_PATTERN = r"[^\x00]*"
#: The text of a ``label:`` target: 1-200 characters, no NUL, no line break, and
#: no blank at either end (blank by Python's and JavaScript's rules alike).
_LABEL_TEXT = r"[^\s\x00\x1c-\x1f\x85](?:[^\x00\r\n]{0,198}[^\s\x00\x1c-\x1f\x85])?"
#: A target expression as the API documents it: an agent id, ``tag:NAME``,
#: ``cap:NAME``, ``label:TEXT`` or ``broadcast`` (the service also forgives blanks
#: around the parts).
TARGET_PATTERN = rf"(?:tag|cap):{NAME_PATTERN}|label:{_LABEL_TEXT}|{NAME_PATTERN}"

#: The largest message, task or event id (and cursor, epoch) accepted: 2^53-1, the
#: largest integer every JSON parser (JavaScript's included) holds exactly, far
#: above any real id and below the databases' 2^63-1.
MAX_ID = 2**53 - 1
#: Most items one listing returns (inbox, events, tasks), and most message ids in
#: one receipt: the same for the embedded and the remote client.
MAX_LIMIT = 1000
#: Where an unread count stops: a count reads at most this many index entries,
#: whatever the backlog, and a count of exactly this many means "this many or
#: more" (shown as ``1000+``).
UNREAD_COUNT_LIMIT = 1000
#: Deepest nesting of a ``meta`` object: ``{"a": 1}`` is 1 deep, ``{"a": [1]}`` 2.
MAX_META_DEPTH = 32
#: Characters of a label (also of a ``label:`` target).
MAX_LABEL_CHARS = 200
#: Characters of a message subject.
MAX_SUBJECT_CHARS = 1000
#: Longest URL (an external link, a callback URL).
MAX_URL = 2048
#: Longest lease (seconds): a week.
MAX_LEASE_SECONDS = 7 * 86400
#: Process ids.
MAX_PID = 2**31 - 1
#: Characters of a host name, and of an instance id (the columns' widths).
MAX_HOST_CHARS = 255
MAX_INSTANCE_ID_CHARS = 128


def anchored(pattern: str) -> str:
    """``pattern`` as a whole-string JSON Schema pattern (``^...$``)."""
    return f"^(?:{pattern})$"


def count_text(count: int, limit: int = UNREAD_COUNT_LIMIT) -> str:
    """``count`` for people: ``"1000+"`` when it reached ``limit`` (a capped count)."""
    return f"{count}+" if count >= limit else str(count)
