"""A replica killed between the commit of a send and its reply: the SDK sends again with
the same ``Idempotency-Key``, a moment later (the dying replica may still accept that
connection and drop it too: then once more), reaches another replica, and gets the
original message. Every acknowledged message is stored exactly once.

The victim is a replica of the test's own on the shared cluster's database, started with
the test-only hook ``RELAYBUS_TEST_KILL_AFTER_COMMIT``: the send carrying that key makes
it SIGKILL itself right after the commit. Senders are threads of this process with SDK
clients behind a loopback failover proxy (``tests/support/proxy.py``): victim first, then
replica b once the victim refuses connections.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from relaybus import Relay
from tests.cluster.conftest import CLUSTER_ENV, Cluster
from tests.cluster.replicas import HUNG, api, register, start_replica
from tests.support.proxy import Proxy

#: Under pytest-xdist (--dist loadgroup) one worker runs every cluster test: they share
#: the package's three replicas, which each worker would otherwise start again.
pytestmark = pytest.mark.xdist_group("cluster")

WORKSPACE = "idem"
SENDERS = 3
#: Messages per sender; sender 0's message KILL_AT carries the fatal key.
SENDS = 30
KILL_AT = 12
KILL_KEY = "kill-the-victim-after-this-commit"
#: The proxy's upstreams, by index: the victim first, then replica b.
VICTIM, B = 0, 1


@pytest.mark.slow
def test_a_send_whose_replica_died_after_the_commit_is_stored_once(cluster: Cluster) -> None:
    with api(cluster.a, workspace=WORKSPACE) as admin:
        register(admin, "sink")
        for n in range(SENDERS):
            register(admin, f"sender-{n}")
    env = {
        **CLUSTER_ENV,
        "RELAYBUS_SWEEP_INTERVAL": "0",
        "RELAYBUS_TEST_KILL_AFTER_COMMIT": KILL_KEY,
    }
    victim = start_replica("idem-victim", cluster.database_url, cluster.folder, env)
    start = threading.Barrier(SENDERS)
    try:
        victim.wait_announced()
        with (
            Proxy([victim.url, cluster.b.url]) as proxy,
            ThreadPoolExecutor(SENDERS) as pool,
        ):

            def send_all(sender: int) -> dict[str, int]:
                acked = {}
                with Relay.open(url=proxy.url, workspace=WORKSPACE) as relay:
                    me = relay.agent(f"sender-{sender}")
                    start.wait(HUNG)
                    for n in range(SENDS):
                        body = f"{sender}-{n}"
                        fatal = sender == 0 and n == KILL_AT
                        key = KILL_KEY if fatal else None
                        acked[body] = me.send("sink", body, idempotency_key=key).id
                return acked

            results = list(pool.map(send_all, range(SENDERS), timeout=HUNG * 2))
            fatal_requests = proxy.upstreams_of(f'"{KILL_KEY}"'.encode())
        assert victim.proc.wait(HUNG) == -9
    finally:
        victim.stop()

    acked = {body: message_id for found in results for body, message_id in found.items()}
    assert len(acked) == SENDERS * SENDS
    stored = cluster.rows(
        "SELECT id, body FROM messages WHERE workspace = :ws ORDER BY id", ws=WORKSPACE
    )
    assert sorted((m, b) for b, m in acked.items()) == [(row.id, row.body) for row in stored]
    # Only the hook kills the victim (exit -9 above), and only after the fatal send's
    # commit: that send went to the victim first and was sent again with its key (a
    # moment later, see transport.retries) until b answered it with the stored message.
    assert len(fatal_requests) in (2, 3), fatal_requests
    assert fatal_requests[0] == VICTIM and fatal_requests[-1] == B, fatal_requests
    deliveries = cluster.rows(
        "SELECT count(*) AS n FROM deliveries WHERE workspace = :ws", ws=WORKSPACE
    )
    assert deliveries[0].n == SENDERS * SENDS
