"""Fixtures for the cluster tests: one real PostgreSQL database and three real replicas.

``cluster`` is shared by every test of the package (they act in workspaces of
their own, so they never see each other's agents, messages or tasks): a brand-new
empty database from :mod:`pg`, three ``relaybus serve --database URL`` replicas
started at once on it (so their migrate-on-open races), and a SQLAlchemy engine
for reading the database directly. Everything is stopped and the database
dropped after the last test. A failed test's report ends with the replicas' logs.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.cluster.replicas import STARTED, Replica, replicas
from tests.support.pg import drop_database, fresh_database_url

#: The environment of the shared replicas: sweeps every 0.2 s (so lapsed leases are
#: released promptly), and small pools (three replicas stay far below PostgreSQL's
#: max_connections).
CLUSTER_ENV = {
    "RELAYBUS_SWEEP_INTERVAL": "0.2",
    "RELAYBUS_POOL_SIZE": "4",
    "RELAYBUS_POOL_OVERFLOW": "8",
}


@dataclass
class Cluster:
    """The shared replicas (``a``, ``b``, ``c``), their database and a direct engine."""

    database_url: str
    folder: Path
    replicas: list[Replica]
    db: sa.Engine

    @property
    def a(self) -> Replica:
        return self.replicas[0]

    @property
    def b(self) -> Replica:
        return self.replicas[1]

    @property
    def c(self) -> Replica:
        return self.replicas[2]

    def rows(self, query: str, **params: Any) -> list[sa.Row[Any]]:
        """Run one SQL query on the cluster's database; its rows."""
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(query), params))


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three replicas on one fresh PostgreSQL database, for the whole package."""
    url = fresh_database_url()
    folder = tmp_path_factory.mktemp("cluster")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with replicas(url, folder, ["a", "b", "c"], CLUSTER_ENV) as started:
            yield Cluster(url, folder, started, engine)
    finally:
        engine.dispose()
        drop_database(url)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Adds the tail of every replica's log to the report of a failed test."""
    report = yield
    if report.failed:
        for replica in STARTED:
            state = "running" if replica.proc.poll() is None else f"exit {replica.proc.returncode}"
            title = f"replica {replica.name} (pid {replica.pid}, {state}) {replica.log_path}"
            report.sections.append((title, replica.log_tail() or "(no output)"))
    return report
