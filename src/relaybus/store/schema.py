"""The relay schema: one set of SQLAlchemy Core tables for SQLite and PostgreSQL.

Times are float Unix seconds (``Double``), JSON columns are JSONB on
PostgreSQL. Message and event ids are monotonic and never reused
(``AUTOINCREMENT`` on SQLite), because clients resume from them as cursors.
The schema is created only by Alembic migrations (``store/migrations``).
"""

from __future__ import annotations

import json
import numbers
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeEngine

metadata = sa.MetaData()


class _Json(sa.TypeDecorator[Any]):
    """JSON: ``JSONB`` on PostgreSQL, SQLAlchemy's ``JSON`` elsewhere.

    The same as ``sa.JSON().with_variant(JSONB(), "postgresql")``, except that the
    PostgreSQL dialect is imported only when a PostgreSQL database uses the type:
    importing it costs every command on a SQLite store tens of milliseconds.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, :func:`load_json`: SQLAlchemy's processor for a JSON column
        there is three calls deep per value, a millisecond on a 1,000-message inbox;
        elsewhere SQLAlchemy's (psycopg decodes JSONB itself)."""
        if dialect.name == "sqlite" and not dialect._json_deserializer:
            return load_json
        return super().result_processor(dialect, coltype)


def load_json(value: Any) -> Any:
    """A JSON column's value as stored by SQLite, decoded as SQLAlchemy's SQLite
    dialect decodes it (``json.loads``; a number SQLite hands back as a number stays
    one), with the empty object (most messages' ``meta``) made without the parser.
    ``tests/store/test_statements.py`` checks it against SQLAlchemy's own."""
    if value is None:
        return None
    if value == "{}":
        return {}
    if isinstance(value, str | bytes):
        return json.loads(value)
    if isinstance(value, numbers.Number):
        return value
    return json.loads(value)  # raises TypeError, as SQLAlchemy's would


Json = _Json()

# Partial indexes are written with ``sqlite_where`` only: naming a ``postgresql_*``
# option makes SQLAlchemy import its PostgreSQL dialect to check it, which every
# command on a SQLite store would pay for. :func:`postgresql_options` gives them the
# same WHERE clause on PostgreSQL before any DDL is made from this metadata.
Time = sa.Double[float]()
# BIGINT on PostgreSQL; SQLite needs exactly INTEGER PRIMARY KEY for AUTOINCREMENT.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("label", sa.String(200)),
    sa.Column("tags", Json, nullable=False),
    sa.Column("capabilities", Json, nullable=False),
    sa.Column("channels", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),
    sa.Column("cwd", sa.Text),
    sa.Column("meta", Json, nullable=False),
    sa.Column("instance_id", sa.String(128)),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("registered_at", Time, nullable=False),
    sa.Column("last_seen_at", Time, nullable=False),
    # open | guarded | read-only (models.Approval); NULL reads as open.
    sa.Column("approval", sa.String(16)),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(128), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("channel", sa.String(128)),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("reply_to", sa.BigInteger),
    sa.Column("thread_id", sa.BigInteger),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("task_id", sa.BigInteger),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_messages_thread", "workspace", "thread_id"),
    sa.Index("ix_messages_created", "created_at"),
    sqlite_autoincrement=True,
)

# One row per recipient: fan-out on write. A reader's read_at never hides the
# message from anyone else. A delivery is queued until it reaches the agent's
# session (delivered_at, and via which path: models.Via), then read (read_at);
# read implies delivered, so a queued delivery is always unread.
#
# Laid out for fan-out (migration 0006): the rows are kept in message order (the
# primary key leads with message_id; on SQLite a WITHOUT ROWID table, so the key is
# the table), where a send's deliveries are appended together, and each delivery is
# in exactly one agent-ordered index: ix_deliveries_unread until it is read, then
# ix_deliveries_read. A broadcast to N agents thus touches N places of one
# agent-ordered b-tree instead of three (the key, the unread and the queued index).
# An inbox reads the unread index, or both (merged by message id) for read and unread;
# a message's recipients are a range of the key.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("read_at", Time),
    sa.Column("delivered_at", Time),
    sa.Column("via", sa.String(16)),
    sa.PrimaryKeyConstraint("message_id", "workspace", "agent_id"),
    # read_at and delivered_at ride along in both (in this one read_at is always NULL)
    # so that an unread count and an inbox page read the index alone, never the table.
    sa.Index(
        "ix_deliveries_unread",
        "workspace",
        "agent_id",
        "message_id",
        "read_at",
        "delivered_at",
        sqlite_where=sa.text("read_at IS NULL"),
    ),
    sa.Index(
        "ix_deliveries_read",
        "workspace",
        "agent_id",
        "message_id",
        "read_at",
        "delivered_at",
        sqlite_where=sa.text("read_at IS NOT NULL"),
    ),
    sqlite_with_rowid=False,
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("channel", sa.String(128)),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("creator", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assignee", sa.String(128)),
    sa.Column("assignee_epoch", sa.Integer),
    sa.Column("lease_expires_at", Time),
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("progress_note", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("dedupe_key", sa.String(255)),
    sa.Column("occurrence_count", sa.Integer, nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    # Raised by an integration (its name), from which system (``source``), with a link.
    sa.Column("integration", sa.String(128)),
    sa.Column("source", sa.String(128)),
    sa.Column("external_url", sa.Text),
    sa.Column("priority", sa.String(16)),
    # A repeat of its dedupe key was last seen / last told to anyone.
    sa.Column("last_seen_at", Time),
    sa.Column("notified_at", Time),
    # The length of the holder's lease: a renewal that names none keeps it.
    sa.Column("lease_seconds", Time),
    sa.Index("ix_tasks_status", "workspace", "status"),
    # A dedupe key names one active task per integration (NULL: raised by an agent or
    # the operator, whose keys the write lock keeps unique); a closed task leaves it.
    sa.Index(
        "ux_tasks_active_dedupe",
        "workspace",
        "integration",
        "dedupe_key",
        unique=True,
        sqlite_where=sa.text(
            "dedupe_key IS NOT NULL AND status IN ('open', 'claimed', 'in_progress', 'blocked')"
        ),
    ),
    sqlite_autoincrement=True,
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("task_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(128)),
    sa.Column("progress", sa.Integer),
    sa.Column("note", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_task_events_task", "task_id"),
)

# The append-only event log: streams, the dashboard, callbacks and metrics all
# read this one table, resuming from the last id they saw.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("agent_id", sa.String(128)),
    sa.Column("data", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_events_workspace", "workspace", "id"),
    sa.Index("ix_events_created", "created_at"),
    sqlite_autoincrement=True,
)

# Bearer tokens, stored only as SHA-256 hex digests. ``kind`` is ``agent`` (acts
# as the agent ``subject`` in ``workspace``) or ``integration`` (the integration
# ``subject``).
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_tokens_subject", "workspace", "kind", "subject"),
)

# External systems (monitoring, CI, ticket desks) that post events as tasks and hear
# back through signed callbacks. ``secret`` signs the callbacks (HMAC-SHA256; the
# receiver holds it too, so it is kept as given, unlike a token); ``rate_limit`` is
# events per minute.
integrations = sa.Table(
    "integrations",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("targets", Json, nullable=False),
    sa.Column("channels", Json, nullable=False),
    sa.Column("callback_url", sa.Text),
    sa.Column("secret", sa.String(128)),
    sa.Column("rate_limit", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

# The callback outbox: a row per task change an integration hears about, written in
# the change's transaction. ``pending`` rows are due at ``next_attempt_at``; a sender
# moves that forward (by its timeout) before it posts, so a sender that dies leaves
# the row due again, never lost. ``attempts`` counts the posts begun.
callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("integration", sa.String(128), nullable=False),
    sa.Column("task_id", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(48), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Time),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("delivered_at", Time),
    sa.Index("ix_callbacks_due", "next_attempt_at", sqlite_where=sa.text("status = 'pending'")),
    sa.Index("ix_callbacks_integration", "workspace", "integration", "id"),
    sqlite_autoincrement=True,
)

# Every attempt to post a callback: begun (``runner``, ``started_at``), then its
# outcome (HTTP ``status`` or ``error``, ``latency`` in seconds). An attempt whose
# sender died has no outcome.
callback_attempts = sa.Table(
    "callback_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("callback_id", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("runner", sa.String(255), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("latency", Time),
    sa.Column("error", sa.Text),
    sa.Index("ix_callback_attempts_callback", "callback_id"),
    sqlite_autoincrement=True,
)

# Fixed-window counters of rate limits that every replica shares: ``count`` requests
# of ``subject`` (``integration:NAME``) since ``window_start``.
rate_counts = sa.Table(
    "rate_counts",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(128), primary_key=True),
    sa.Column("window_start", Time, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# Pairs: a focused two-agent session (inviter asks invitee: pending, then active,
# rejected or expired; active until either hangs up or stays offline: ended). One
# pending or active pair per agent, checked under the store's write lock. Pair
# messages are one thread rooted at ``thread_id``.
pairs = sa.Table(
    "pairs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("inviter", sa.String(128), nullable=False),
    sa.Column("invitee", sa.String(128), nullable=False),
    sa.Column("objective", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("thread_id", sa.BigInteger),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("expires_at", Time),
    sa.Column("accepted_at", Time),
    sa.Column("ended_at", Time),
    sa.Column("ended_by", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Index("ix_pairs_inviter", "workspace", "inviter", "status"),
    sa.Index("ix_pairs_invitee", "workspace", "invitee", "status"),
    sqlite_autoincrement=True,
)

# Workflow runs: one row per run of a workflow file, kept by its runner. ``state`` is
# the runner's own document (steps, attempts, task ids, results); ``version`` goes up
# by one on every update, which names the version it read (compare-and-set), so two
# runners never both write a run. ``runner`` (host:pid) holds it, ``heartbeat_at`` is
# when it last said so; ``finished_at`` is set when the status leaves ``running``.
workflow_runs = sa.Table(
    "workflow_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("file", sa.Text),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("runner", sa.String(255)),
    sa.Column("heartbeat_at", Time),
    sa.Column("state", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("finished_at", Time),
    sa.Index("ix_workflow_runs_name", "workspace", "name", "id"),
    sa.Index("ix_workflow_runs_status", "workspace", "status"),
    sqlite_autoincrement=True,
)

# Background jobs (``sweep``, ``prune``), one row each: a replica runs a job
# only after moving ``due_at`` forward in its own transaction, so in a cluster
# each run happens on exactly one replica. ``ran_by`` names it (host:pid).
sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("job", sa.String(32), primary_key=True),
    sa.Column("due_at", Time, nullable=False),
    sa.Column("ran_at", Time),
    sa.Column("ran_by", sa.String(255)),
)

# Idempotency keys of sends (``Idempotency-Key``): the first send with a key stores its
# messages and this row in one transaction; a retry with the same key from the same
# sender finds the row and gets the same messages back instead of new ones. The primary
# key is the guarantee on every replica. ``request_hash`` is the SHA-256 of the request
# (a reused key with another request is refused); rows older than a day are pruned.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("sender", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("message_ids", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_idempotency_keys_created", "workspace", "created_at"),
)

# Facts about the schema itself; ``compatible_from`` is the oldest schema
# revision whose code may serve this database (see store/migrate.py).
relay_meta = sa.Table(
    "relay_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def postgresql_options() -> None:
    """Give every partial index (one with ``sqlite_where``) the same ``postgresql_where``.

    Idempotent. Runs before ``metadata.create_all`` (an event on :data:`metadata`) and
    in the migrations' environment (autogenerate), so DDL and migrations made from this
    metadata build the same partial indexes on both dialects.
    """
    for table in metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None and index.dialect_options["postgresql"]["where"] is None:
                index.dialect_options["postgresql"]["where"] = where


@sa.event.listens_for(metadata, "before_create")
def _before_create(target: sa.MetaData, connection: Any, **kw: Any) -> None:
    postgresql_options()


class joined_ids(sa.sql.functions.FunctionElement[str]):  # noqa: N801 (a SQL function)
    """``joined_ids(column)``: the column's values of the group joined with commas,
    in no particular order (ids hold no comma): ``group_concat(x, ',')`` on SQLite,
    ``string_agg(x, ',')`` on PostgreSQL. The separator is part of the SQL text, so
    a statement using it compiles once (SQLAlchemy's ``aggregate_strings`` renders
    its separator at each execution, which the fast path cannot cache)."""

    type = sa.String()
    inherit_cache = True
    name = "joined_ids"


@compiles(joined_ids)
def _joined_ids(element: joined_ids, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"


@compiles(joined_ids, "postgresql")
def _joined_ids_postgresql(element: joined_ids, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ',')"
