"""Column types, columns and index options the migration scripts share.

Migrations are history: a script in ``migrations/versions`` must go on emitting the DDL it
emitted when it was written. Each piece here renders exactly what the expression it stands
for rendered, on SQLite and on PostgreSQL; never change one that a migration uses (add a new
one instead). Migrations do not use :mod:`relaybus.store.schema`, which follows the code.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

#: A JSON column's type: ``JSONB`` on PostgreSQL, ``JSON`` elsewhere.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def id_column() -> sa.Column[int]:
    """The ``id`` column of a table whose ids never repeat: ``BIGINT`` on PostgreSQL,
    ``INTEGER`` on SQLite (which takes ``AUTOINCREMENT`` on ``INTEGER PRIMARY KEY``
    only); the table names it in its ``PrimaryKeyConstraint``."""
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def json_column(name: str) -> sa.Column[Any]:
    """A ``NOT NULL`` :data:`JSON` column."""
    return sa.Column(name, JSON, nullable=False)


def partial(where: str) -> dict[str, Any]:
    """The keyword arguments that make an index partial (``WHERE where``) on both
    dialects: for ``create_index`` and, to name the same index, ``drop_index``."""
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
