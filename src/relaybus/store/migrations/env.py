"""Alembic environment: runs on the connection relaybus hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from relaybus.store.migrate import LOCK_TIMEOUT
from relaybus.store.schema import metadata, postgresql_options

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("relaybus migrations run through relaybus.store.migrate.upgrade()")

if connection.dialect.name == "postgresql":
    # Serialise concurrent migrators (released at commit): replicas starting at
    # once on an empty database queue here, and the later ones find nothing to do.
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4851)")
    # Then never queue long behind live traffic for a table lock: every query on
    # that table would queue behind the migration. Give up and roll back instead.
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")

postgresql_options()  # the partial indexes' WHERE on PostgreSQL too (autogenerate)
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
