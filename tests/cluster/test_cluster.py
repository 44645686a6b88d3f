"""Three real replicas on one PostgreSQL: they share the database, deliver each other's
sends live, give every task exactly one winner, sweep lapsed leases exactly once between
them, and a replica whose LISTEN connection is cut gets it back.

Each test acts in a workspace of its own on the shared :func:`~conftest.cluster`.
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from relaybus.store import migrate
from tests.cluster.conftest import Cluster
from tests.cluster.replicas import HUNG, Replica, api, metric, register, sse, wait_until

#: Under pytest-xdist (--dist loadgroup) one worker runs every cluster test: they share
#: the package's three replicas, which each worker would otherwise start again.
pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.slow]

#: Tasks the workers race for, and the workers (two per replica).
TASKS = 300
WORKERS = 6
#: Claims a worker tries from one listing of the open tasks before listing them again.
BURST = 20
#: Tasks leased for a moment and left to lapse, and the lease (seconds; any lease above
#: 0 is accepted).
LAPSING = 40
SHORT_LEASE = 0.5


@pytest.mark.slow
def test_replicas_started_at_once_on_an_empty_database_share_it_and_name_themselves(
    cluster: Cluster,
) -> None:
    infos = []
    for replica in cluster.replicas:
        with api(replica) as client:
            assert client.get("/readyz").status_code == 200
            infos.append(client.get("/v1/info").json())

    assert [info.get("replica") for info in infos] == [
        f"{socket.gethostname()}:{replica.pid}" for replica in cluster.replicas
    ]
    assert [info["backend"] for info in infos] == ["postgresql"] * 3
    versions = cluster.rows("SELECT version_num FROM alembic_version")
    assert [row.version_num for row in versions] == [migrate.HEAD]
    names = Counter(row.application_name for row in cluster.rows(ACTIVITY))
    for replica in cluster.replicas:
        assert names[f"relaybus-listen-{replica.pid}"] == 1, names
        assert names[f"relaybus-{replica.pid}"] >= 1, names


@pytest.mark.slow
def test_a_send_through_one_replica_reaches_streams_and_a_long_poll_held_on_others(
    cluster: Cluster,
) -> None:
    with api(cluster.a, workspace="live") as admin:
        alice = register(admin, "alice")
        bob = register(admin, "bob")
    headers = {"Authorization": f"Bearer {bob}"}
    with (
        sse(cluster.b, bob) as stream,
        ws_connect(f"{cluster.b.ws_url}/v1/ws", additional_headers=headers) as ws,
        api(cluster.c, bob) as poller,
        api(cluster.a, alice) as sender,
        ThreadPoolExecutor(1) as pool,
    ):
        assert json.loads(ws.recv(HUNG))["type"] == "ready"
        poll = pool.submit(poller.get, "/v1/agents/bob/inbox", params={"wait": HUNG})
        wait_until(
            lambda: metric(cluster.c, "relaybus_live_connections", transport="longpoll"),
            "the long-poll waits on replica c",
        )
        reply = sender.post("/v1/messages", json={"to": "bob", "body": "from replica a"})
        assert reply.status_code == 201, reply.text
        sent = reply.json()

        pushed = stream.next_message()
        framed = next_ws_message(ws)
        answered = poll.result(HUNG)

    assert (pushed["id"], pushed["body"]) == (sent["id"], "from replica a")
    assert (framed["id"], framed["body"]) == (sent["id"], "from replica a")
    assert answered.status_code == 200, answered.text
    assert [m["id"] for m in answered.json()] == [sent["id"]]


@dataclass
class Claims:
    """What one worker got: the tasks it won, and how many claims it lost (409)."""

    won: list[int] = field(default_factory=list)
    lost: int = 0
    unexpected: list[str] = field(default_factory=list)


def claim_until_none_open(replica: Replica, token: str, task_ids: set[int], seed: int) -> Claims:
    """A worker: list the open tasks of ``task_ids``, try to claim up to :data:`BURST`
    of them in random order, and again, until none is open."""
    claims = Claims()
    shuffle = random.Random(seed).shuffle
    with api(replica, token) as client:
        for _ in range(TASKS):  # a bound only: a few dozen rounds empty the list
            listed = client.get("/v1/tasks", params={"status": "open", "limit": 1000})
            assert listed.status_code == 200, listed.text
            candidates = [t["id"] for t in listed.json() if t["id"] in task_ids]
            if not candidates:
                return claims
            shuffle(candidates)
            for task_id in candidates[:BURST]:
                reply = client.post(f"/v1/tasks/{task_id}/claim", json={})
                if reply.status_code == 200:
                    claims.won.append(task_id)
                elif reply.status_code == 409:
                    claims.lost += 1
                else:
                    claims.unexpected.append(f"{reply.status_code} {reply.text}")
    raise AssertionError(f"tasks still open after {TASKS} rounds")


@pytest.mark.slow
def test_six_workers_on_three_replicas_race_for_300_tasks_and_each_has_one_winner(
    cluster: Cluster,
) -> None:
    workspace = "race"
    workers = [f"worker-{i}" for i in range(WORKERS)]
    with api(cluster.a, workspace=workspace) as admin:
        boss = register(admin, "boss")
        tokens = [register(admin, name, capabilities=["build"]) for name in workers]
    drafts = [{"to": "cap:build", "body": f"job {n}", "claimable": True} for n in range(TASKS)]
    with api(cluster.b, boss) as client:
        created = client.post("/v1/messages/batch", json={"messages": drafts})
    assert created.status_code == 201, created.text
    task_ids = {m["task_id"] for m in created.json()}
    assert len(task_ids) == TASKS and None not in task_ids

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [
            pool.submit(claim_until_none_open, cluster.replicas[i % 3], token, task_ids, i)
            for i, token in enumerate(tokens)
        ]
        outcomes = [future.result(HUNG * 4) for future in futures]

    assert [o.unexpected for o in outcomes] == [[]] * WORKERS
    winners = {task_id: workers[i] for i, o in enumerate(outcomes) for task_id in o.won}
    assert sum(len(o.won) for o in outcomes) == TASKS  # 200s: one per task...
    assert set(winners) == task_ids  # ...and every task has one
    assert sum(o.lost for o in outcomes) > 0, "no claim ever lost: the workers did not race"

    claimed = cluster.rows(
        "SELECT task_id, count(*) AS n FROM task_events"
        " WHERE workspace = :ws AND kind = 'claimed' GROUP BY task_id",
        ws=workspace,
    )
    assert {row.task_id: row.n for row in claimed} == dict.fromkeys(task_ids, 1)
    kinds = cluster.rows(
        "SELECT DISTINCT kind FROM task_events WHERE workspace = :ws", ws=workspace
    )
    assert {row.kind for row in kinds} == {"created", "claimed"}
    logged = cluster.rows(
        "SELECT (data->>'task_id')::bigint AS task_id, agent_id FROM events"
        " WHERE workspace = :ws AND kind = 'task.claimed'",
        ws=workspace,
    )
    assert sorted((row.task_id, row.agent_id) for row in logged) == sorted(winners.items())
    held = cluster.rows(
        "SELECT id, status, assignee FROM tasks WHERE workspace = :ws", ws=workspace
    )
    assert {row.id: (row.status, row.assignee) for row in held} == {
        task_id: ("claimed", winner) for task_id, winner in winners.items()
    }


@pytest.mark.slow
def test_sweeps_run_on_every_replica_and_release_each_expired_lease_exactly_once(
    cluster: Cluster,
) -> None:
    workspace = "leases"
    with api(cluster.a, workspace=workspace) as admin:
        boss = register(admin, "boss")
        holders = [register(admin, f"holder-{i}", capabilities=["hold"]) for i in range(4)]
    drafts = [{"to": "cap:hold", "body": f"job {n}", "claimable": True} for n in range(LAPSING)]
    with api(cluster.c, boss) as client:
        created = client.post("/v1/messages/batch", json={"messages": drafts})
    assert created.status_code == 201, created.text
    task_ids = sorted(m["task_id"] for m in created.json())

    for i, token in enumerate(holders):
        with api(cluster.replicas[i % 3], token) as client:
            for task_id in task_ids[i::4]:
                reply = client.post(f"/v1/tasks/{task_id}/claim", json={"lease": SHORT_LEASE})
                assert reply.status_code == 200, reply.text

    # Nobody reads the tasks (a read would release a lapsed lease itself): the database
    # is watched directly until the sweepers have reopened every one.
    wait_until(lambda: open_count(cluster, workspace) == LAPSING, "every lapsed lease released")

    released = cluster.rows(
        "SELECT (data->>'task_id')::bigint AS task_id, data->>'reason' AS reason FROM events"
        " WHERE workspace = :ws AND kind = 'task.released'",
        ws=workspace,
    )
    assert sorted((row.task_id, row.reason) for row in released) == [
        (task_id, "lease expired") for task_id in task_ids
    ]
    history = cluster.rows(
        "SELECT task_id, note FROM task_events WHERE workspace = :ws AND kind = 'released'",
        ws=workspace,
    )
    assert sorted((row.task_id, row.note) for row in history) == [
        (task_id, "lease expired") for task_id in task_ids
    ]
    wait_until(lambda: several(sweepers(cluster)), "sweeps won by at least two replicas")
    changes = sum(
        metric(r, "relaybus_sweep_changes_total", job="sweep", change="tasks_released")
        for r in cluster.replicas
    )
    assert changes >= LAPSING  # the sweepers released them (other workspaces may add more)


@pytest.mark.slow
def test_a_replica_whose_listen_connection_is_cut_reconnects_and_keeps_delivering(
    cluster: Cluster,
) -> None:
    with api(cluster.a, workspace="relisten") as admin:
        alice = register(admin, "alice")
        bob = register(admin, "bob")
    name = f"relaybus-listen-{cluster.c.pid}"
    with sse(cluster.c, bob) as stream, api(cluster.a, alice) as sender:
        before = listen_backends(cluster, name)
        assert len(before) == 1, before
        cut = cluster.rows("SELECT pg_terminate_backend(:pid) AS done", pid=before[0])
        assert [row.done for row in cut] == [True]
        first = sender.post("/v1/messages", json={"to": "bob", "body": "while cut off"})
        assert first.status_code == 201, first.text
        after = wait_until(
            lambda: [pid for pid in listen_backends(cluster, name) if pid != before[0]],
            "the listen connection is back",
        )
        second = sender.post("/v1/messages", json={"to": "bob", "body": "after the reconnect"})
        assert second.status_code == 201, second.text

        got = [stream.next_message(), stream.next_message()]

    assert len(after) == 1, after
    wait_until(lambda: listen_backends(cluster, name) == after, "only the new listen connection")
    assert [(m["id"], m["body"]) for m in got] == [
        (first.json()["id"], "while cut off"),
        (second.json()["id"], "after the reconnect"),
    ]


# -- helpers ------------------------------------------------------------------------------

#: The relaybus connections to the cluster's database.
ACTIVITY = (
    "SELECT pid, application_name FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name LIKE 'relaybus-%'"
)


def listen_backends(cluster: Cluster, application_name: str) -> list[int]:
    """Backend pids of the connections called ``application_name``."""
    rows = cluster.rows(
        "SELECT pid FROM pg_stat_activity WHERE application_name = :name", name=application_name
    )
    return [row.pid for row in rows]


def open_count(cluster: Cluster, workspace: str) -> int:
    rows = cluster.rows(
        "SELECT count(*) AS n FROM tasks WHERE workspace = :ws AND status = 'open'", ws=workspace
    )
    return int(rows[0].n)


def sweeps(replica: Replica) -> float:
    """Sweeps (lease expiry, presence) this replica ran: it won their claim."""
    return metric(replica, "relaybus_sweeps_total", job="sweep")


def sweepers(cluster: Cluster) -> list[str]:
    """The replicas that have run at least one sweep."""
    return [r.name for r in cluster.replicas if sweeps(r) > 0]


def several(names: list[str]) -> list[str]:
    """``names`` if there are two or more, else an empty list (falsy)."""
    return names if len(names) >= 2 else []


def next_ws_message(ws: ClientConnection) -> dict[str, Any]:
    """The message of the next ``message.sent`` event frame on a ``/v1/ws`` socket."""
    for _ in range(100):  # other events (an agent's status) may come first; not many
        frame = json.loads(ws.recv(HUNG))
        if frame["type"] == "event" and frame["event"]["kind"] == "message.sent":
            message: dict[str, Any] = frame["event"]["data"]["message"]
            return message
    raise AssertionError("no message.sent frame among 100")
