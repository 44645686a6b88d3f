"""Idempotency keys of sends: a retried send returns the original messages.

A client that sent a message and got no answer (the connection dropped, the
replica died between its commit and its reply) cannot know whether the message
was stored. With an idempotency key it sends again with the same key: the first
request with a key from a sender stores its messages and a row in
``idempotency_keys`` in the same transaction; a later request with that key from
that sender (same workspace) within :data:`KEY_TTL` seconds stores nothing and
gets the original messages back. The table's primary key makes that hold on
every replica and under racing retries; it is not a cache.

Semantics follow the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header): a key is scoped to its sender, it
expires (here after 24 h, then it may be used again), and reusing a key with a
different request is an error. The draft suggests 422 for that; relaybus answers
409 :class:`~relaybus.errors.Conflict`, its status for "valid, but the stored
state forbids it" (its 400/422 mean a malformed request). A retry that arrives
while the original is still being stored waits for it (writers are serialised)
and gets its messages, where the draft would allow a 409.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, InvalidInput
from ..store.schema import idempotency_keys
from ..store.statements import register, run

#: Seconds a key stays bound to its request (24 h); older keys are ignored, pruned
#: by the retention sweep, and may be used again.
KEY_TTL = 86400.0
#: Longest key (characters).
MAX_KEY_CHARS = 255
#: A key: 1-255 printable ASCII characters, no space at either end (HTTP strips those).
KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"
_KEY_RE = re.compile(KEY_PATTERN)

_FIND = register(
    "idempotency_keys.find",
    sa.select(
        idempotency_keys.c.request_hash,
        idempotency_keys.c.message_ids,
        idempotency_keys.c.created_at,
    ).where(
        idempotency_keys.c.workspace == sa.bindparam("ws"),
        idempotency_keys.c.sender == sa.bindparam("sender"),
        idempotency_keys.c.key == sa.bindparam("key"),
    ),
)
_INSERT = register("idempotency_keys.insert", idempotency_keys.insert())
#: What binding a key another transaction bound first raises: SQLAlchemy's error, or on
#: SQLite's fast path (:mod:`relaybus.store.statements`) the driver's own.
KEY_TAKEN = (sa.exc.IntegrityError, sqlite3.IntegrityError)


class UsedKey(NamedTuple):
    """A live key: the hash of the request that first used it, and its message ids."""

    request_hash: str
    message_ids: list[int]


def valid_key(key: object) -> bool:
    """Whether ``key`` is a well-formed idempotency key (see :func:`check_key`)."""
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


def check_key(key: str) -> str:
    """Validate an idempotency key.

    Raises:
        InvalidInput: not 1-255 printable ASCII characters (``\\x20``-``\\x7e``),
            or a space at either end.
    """
    if not valid_key(key):
        raise InvalidInput(
            f"invalid idempotency key {key!r}: use 1-{MAX_KEY_CHARS} printable ASCII "
            "characters (a uuid4 is a good key), without spaces at either end",
            field="idempotency_key",
        )
    return key


def request_hash(kind: str, items: Sequence[Sequence[Any]]) -> str:
    """The SHA-256 (hex) of a checked request: ``kind`` (``send``, ``batch``) and each
    message's normalised fields, so that equal requests hash equal however spelled."""
    text = json.dumps([kind, [list(item) for item in items]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_key(conn: Connection, workspace: str, sender: str, key: str, now: float) -> UsedKey | None:
    """The live use of ``key`` by ``sender``, in the caller's transaction; an expired
    one (older than :data:`KEY_TTL`) is deleted and ``None`` returned."""
    rows = run(conn, _FIND, {"ws": workspace, "sender": sender, "key": key})
    if not rows:
        return None
    digest, ids, created_at = rows[0]
    if created_at > now - KEY_TTL:
        return UsedKey(digest, [int(i) for i in ids])
    conn.execute(
        idempotency_keys.delete().where(
            idempotency_keys.c.workspace == workspace,
            idempotency_keys.c.sender == sender,
            idempotency_keys.c.key == key,
        )
    )
    return None


def check_same_request(used: UsedKey, digest: str, key: str) -> None:
    """Raises Conflict if ``key`` was first used for another request than ``digest``."""
    if used.request_hash != digest:
        raise Conflict(
            f"idempotency key {key!r} was already used for a different request (message "
            f"{', '.join(map(str, used.message_ids))}); a retry must repeat the same "
            "request, and a new request needs a new key",
            idempotency_key=key,
            message_ids=used.message_ids,
        )


def remember_key(
    conn: Connection,
    workspace: str,
    sender: str,
    key: str,
    digest: str,
    message_ids: list[int],
    now: float,
) -> None:
    """Bind ``key`` to the messages just stored, in the caller's transaction.

    Raises:
        KEY_TAKEN: another transaction bound the key first (only a writer
            outside the store's write lock could).
    """
    params = {
        "workspace": workspace,
        "sender": sender,
        "key": key,
        "request_hash": digest,
        "message_ids": message_ids,
        "created_at": now,
    }
    run(conn, _INSERT, params)


def prune_keys(conn: Connection, workspace: str, now: float) -> int:
    """Delete the keys of ``workspace`` older than :data:`KEY_TTL`; how many."""
    return int(
        conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.workspace == workspace,
                idempotency_keys.c.created_at <= now - KEY_TTL,
            )
        ).rowcount
    )
