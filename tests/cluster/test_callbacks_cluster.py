"""Callbacks from a cluster: three replicas share one outbox on PostgreSQL, one is killed
with SIGKILL while it is posting, and still every callback reaches the receiver, every
attempt is on record, and no callback is ever posted twice at the same time.

The replicas are this test's own (``relaybus serve`` on a fresh database): their
callback settings differ from the shared cluster's (a short timeout, so an attempt the
dead replica held is due again within seconds). The receiver answers after
:data:`RECEIVER_DELAY` seconds, so attempts are in flight when the victim dies, and
records when each request began and ended.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.cluster.conftest import CLUSTER_ENV
from tests.cluster.replicas import Replica, api, register, replicas, wait_until
from tests.support.pg import drop_database, fresh_database_url
from tests.support.receiver import Received, callback_receiver

#: Tasks raised (each reported created, claimed and done: three callbacks), half of them
#: before the victim is killed and half after.
TASKS = 30
#: Seconds the receiver takes to answer.
RECEIVER_DELAY = 0.5
#: The replicas' environment: callbacks time out after 2 s (so an attempt a dead replica
#: held is due again 7 s after it began: the timeout and the sender's 5 s margin), and
#: failed ones are retried after 0.2 s.
ENV = {
    **CLUSTER_ENV,
    "RELAYBUS_CALLBACK_TIMEOUT": "2",
    "RELAYBUS_CALLBACK_BACKOFF": "0.2",
}
#: Seconds the whole outbox may take to drain: the hold of the victim's attempts, a
#: sender's longest sleep between looks, and the attempts themselves, with room.
DRAIN = 60.0


@pytest.fixture
def database() -> Iterator[sa.Engine]:
    """A brand-new empty database (the replicas migrate it) and an engine on it."""
    url = fresh_database_url()
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


def rows(db: sa.Engine, query: str, **params: object) -> list[sa.Row[Any]]:
    with db.connect() as conn:
        return list(conn.execute(sa.text(query), params))


@pytest.mark.slow
def test_a_replica_killed_mid_delivery_loses_no_callback_and_none_is_sent_twice_at_once(
    tmp_path: Path, database: sa.Engine
) -> None:
    url = database.url.render_as_string(hide_password=False)
    with (
        callback_receiver() as receiver,
        replicas(url, tmp_path, ["a", "b", "victim"], ENV) as started,
    ):
        first, second, victim = started
        receiver.delay = RECEIVER_DELAY
        with api(first) as admin:
            created = admin.post(
                "/v1/integrations",
                json={"name": "pager", "targets": ["cap:ops"], "callback_url": receiver.url},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]
            ops = register(admin, "ops-1", capabilities=["ops"])
            hook = created.json()["token"]
            runner = httpx.get(f"{victim.url}/v1/info", timeout=30).json()["replica"]

        raised = work(first, second, hook, ops, range(TASKS // 2))
        # Kill the victim while it is posting: an attempt of its is on record without
        # an outcome (it is waiting for the slow receiver).
        wait_until(
            lambda: open_attempts(database, runner), "the victim posting a callback", timeout=30
        )
        assert victim.kill() == -9
        raised += work(second, first, hook, ops, range(TASKS // 2, TASKS))

        def drained() -> bool:
            states = rows(database, "SELECT status, count(*) AS n FROM callbacks GROUP BY status")
            return {row.status: row.n for row in states} == {"delivered": TASKS * 3}

        wait_until(drained, "every callback delivered", timeout=DRAIN)
        received = list(receiver.received)

    callbacks = rows(database, "SELECT id, event, task_id, attempts FROM callbacks")
    attempts = rows(
        database,
        "SELECT callback_id, attempt, runner, status, latency, error FROM callback_attempts",
    )
    assert len(raised) == TASKS
    assert Counter(row.event for row in callbacks) == {
        "task.created": TASKS,
        "task.claimed": TASKS,
        "task.updated": TASKS,
    }
    assert {row.task_id for row in callbacks} == set(raised)
    assert all(r.valid for r in received), [r for r in received if not r.valid]

    # Each callback reached the receiver, answered 2xx, at least once.
    answered = {r.delivery for r in received if r.answered < 300}
    assert answered == {row.id for row in callbacks}

    # Every attempt is on record: as many rows as the callback counts, numbered from
    # 1; the receiver saw no request the relay has no attempt for.
    log: defaultdict[int, list[sa.Row[Any]]] = defaultdict(list)
    for attempt in attempts:
        log[attempt.callback_id].append(attempt)
    requests = Counter(r.delivery for r in received)
    for row in callbacks:
        numbers = sorted(a.attempt for a in log[row.id])
        assert numbers == list(range(1, row.attempts + 1)), (row, log[row.id])
        assert requests[row.id] <= row.attempts
        assert any(a.status == 200 for a in log[row.id]), log[row.id]

    # The victim's attempts that were under way when it died have no outcome; every
    # other attempt has one; each such callback was delivered later by a survivor.
    unfinished = [a for a in attempts if a.latency is None]
    assert unfinished, "the victim was not killed mid-delivery"
    assert {a.runner for a in unfinished} == {runner}
    assert all(a.status is None and a.error is None for a in unfinished)
    for a in unfinished:
        later = [x for x in log[a.callback_id] if x.attempt > a.attempt]
        assert any(x.status == 200 and x.runner != runner for x in later), log[a.callback_id]
    assert {a.runner for a in attempts} > {runner}, "the survivors sent nothing"

    # No callback had two attempts in flight at once at the receiver.
    assert overlaps(received) == []


def work(first: Replica, second: Replica, hook: str, ops: str, numbers: range) -> list[int]:
    """Raise a task per number through ``first``; claim and finish each through
    ``second``. Returns the task ids."""
    raised = []
    with api(first, hook) as integration, api(second, ops) as agent:
        for n in numbers:
            posted = integration.post(
                "/v1/integrations/events", json={"title": f"alert {n}", "dedupe_key": f"k{n}"}
            )
            assert posted.status_code == 201, posted.text
            raised.append(posted.json()["task"]["id"])
        for task_id in raised:
            claimed = agent.post(f"/v1/tasks/{task_id}/claim", json={})
            assert claimed.status_code == 200, claimed.text
            done = agent.patch(f"/v1/tasks/{task_id}", json={"status": "done"})
            assert done.status_code == 200, done.text
    return raised


def open_attempts(db: sa.Engine, runner: str) -> int:
    """How many attempts ``runner`` has begun and not finished."""
    [row] = rows(
        db,
        "SELECT count(*) AS n FROM callback_attempts WHERE runner = :runner AND latency IS NULL",
        runner=runner,
    )
    return int(row.n)


def overlaps(received: list[Received]) -> list[tuple[Received, Received]]:
    """Pairs of requests of one callback whose times at the receiver overlap."""
    by_delivery: defaultdict[int, list[Received]] = defaultdict(list)
    for r in received:
        by_delivery[r.delivery].append(r)
    found = []
    for requests in by_delivery.values():
        requests.sort(key=lambda r: r.started)
        found += [
            (one, next_one)
            for one, next_one in zip(requests, requests[1:], strict=False)
            if next_one.started < one.ended
        ]
    return found
