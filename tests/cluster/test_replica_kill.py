"""A replica killed with SIGKILL mid-stream loses nothing: its stream's client resumes on
another replica from its last event id, and every send it acknowledged is delivered.

The victim is a replica of the test's own, started on the shared cluster's database;
the consumer and the producers are threads of this process with httpx clients.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.cluster.conftest import CLUSTER_ENV, Cluster
from tests.cluster.replicas import (
    HUNG,
    EventStream,
    Replica,
    StreamEnded,
    api,
    register,
    sse,
    start_replica,
)

#: Under pytest-xdist (--dist loadgroup) one worker runs every cluster test: they share
#: the package's three replicas, which each worker would otherwise start again.
pytestmark = pytest.mark.xdist_group("cluster")

#: Numbered messages sent through replica a, which waits after PAUSE_AT of them until the
#: victim is dead (so the kill is always mid-stream).
SENDS = 200
PAUSE_AT = 100
#: Messages from replica a the consumer has on the victim's stream when it is killed.
KILL_AFTER = 40
#: At most this many sends through the victim (it dies long before).
VICTIM_SENDS = 5000


#: The victim's environment: the shared replicas' pools, no background sweeps.
VICTIM_ENV = {**CLUSTER_ENV, "RELAYBUS_SWEEP_INTERVAL": "0"}


@dataclass
class VictimSends:
    """The sends through the victim: numbers acknowledged (201), and the one whose
    request failed (it may or may not have been stored)."""

    acked: list[int] = field(default_factory=list)
    failed: int | None = None


@dataclass
class Seen:
    """Messages the consumer got, in order: (event id, message id, body)."""

    items: list[tuple[int, int, str]] = field(default_factory=list)

    def take(self, stream: EventStream, until: str, deadline: float) -> None:
        """Record the messages of ``stream`` until one has the body ``until``; fails
        past ``deadline`` (``time.monotonic()``)."""
        while True:
            message = stream.next_message(deadline)
            assert stream.last_id is not None
            self.items.append((stream.last_id, message["id"], message["body"]))
            if message["body"] == until:
                return

    def bodies(self, prefix: str) -> list[str]:
        return [body for _, _, body in self.items if body.startswith(prefix)]


@pytest.mark.slow
def test_killing_a_replica_mid_stream_loses_nothing(cluster: Cluster) -> None:
    with api(cluster.a, workspace="kill") as admin:
        sink = register(admin, "sink")
        producer_a = register(admin, "producer-a")
        producer_v = register(admin, "producer-v")
    victim = start_replica("victim", cluster.database_url, cluster.folder, VICTIM_ENV)
    killed = threading.Event()
    seen = Seen()
    try:
        victim.wait_announced()
        # The stream is open before the first send: it starts "now".
        with ThreadPoolExecutor(2) as pool, sse(victim, sink) as stream:
            through_a = pool.submit(send_through_a, cluster.a, producer_a, killed)
            through_v = pool.submit(send_through_victim, victim, producer_v)
            try:
                resume_from = consume_until_killed(stream, victim, killed, seen)
            finally:
                if not killed.is_set():  # the consumer failed: end the producers too
                    victim.kill()
                    killed.set()
            on_victim = len(seen.items)
            sent_a = through_a.result(HUNG * 2)
            sent_v = through_v.result(HUNG * 2)
    finally:
        victim.stop()

    with api(cluster.a, producer_a) as client:
        end = client.post("/v1/messages", json={"to": "sink", "body": "end"})
    assert end.status_code == 201, end.text
    with sse(cluster.c, sink, last_event_id=resume_from) as stream:
        seen.take(stream, until="end", deadline=time.monotonic() + HUNG)
    assert victim.proc.returncode == -9

    event_ids = [event_id for event_id, _, _ in seen.items]
    assert event_ids == sorted(set(event_ids)), "an event came twice or out of order"
    assert 0 < on_victim < len(seen.items)
    assert seen.bodies("a-") == [f"a-{n}" for n in range(SENDS)]
    assert len(sent_a) == SENDS
    got_v = [int(body.removeprefix("v-")) for body in seen.bodies("v-")]
    assert got_v == sorted(set(got_v)), "a send through the victim came twice or out of order"
    assert sent_v.acked, "the victim acknowledged no send before it was killed"
    assert set(sent_v.acked) <= set(got_v), "an acknowledged send through the victim was lost"
    assert set(got_v) <= {*sent_v.acked, sent_v.failed}
    assert seen.items[-1][2] == "end"
    stored = cluster.rows("SELECT id, body FROM messages WHERE workspace = 'kill' ORDER BY id")
    assert [(row.id, row.body) for row in stored] == [(m, body) for _, m, body in seen.items]


def consume_until_killed(
    stream: EventStream, victim: Replica, killed: threading.Event, seen: Seen
) -> int | None:
    """Record the messages of the victim's ``stream`` in ``seen``; SIGKILL the victim once
    :data:`KILL_AFTER` messages from replica a are in; read on until the stream breaks.
    Returns the last event id read (the resume point)."""
    try:
        for _ in range(SENDS + VICTIM_SENDS):
            message = stream.next_message()
            assert stream.last_id is not None
            seen.items.append((stream.last_id, message["id"], message["body"]))
            if not killed.is_set() and len(seen.bodies("a-")) >= KILL_AFTER:
                victim.kill()
                killed.set()
    except (httpx.TransportError, StreamEnded):
        if not killed.is_set():
            raise  # it broke, or ended, before the victim was killed
        return stream.last_id
    raise AssertionError("the victim's stream went on after it was killed")


def send_through_a(replica: Replica, token: str, killed: threading.Event) -> list[int]:
    """Send ``a-0`` … ``a-199`` to the sink, one at a time, pausing before ``a-100`` until
    the victim is dead; the stored message ids."""
    ids = []
    with api(replica, token) as client:
        for n in range(SENDS):
            if n == PAUSE_AT:
                assert killed.wait(HUNG), "the victim was not killed"
            reply = client.post("/v1/messages", json={"to": "sink", "body": f"a-{n}"})
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["id"])
    return ids


def send_through_victim(victim: Replica, token: str) -> VictimSends:
    """Send ``v-0``, ``v-1`` … to the sink through the victim until a request fails."""
    sends = VictimSends()
    with api(victim, token) as client:
        for n in range(VICTIM_SENDS):
            try:
                reply = client.post("/v1/messages", json={"to": "sink", "body": f"v-{n}"})
            except httpx.TransportError:
                sends.failed = n
                return sends
            assert reply.status_code == 201, reply.text
            sends.acked.append(n)
    return sends
