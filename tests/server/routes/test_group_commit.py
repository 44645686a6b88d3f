"""Group commit of ``POST /v1/messages`` (``relaybus.server.groups``), on a real server over
both dialects with real concurrent HTTP clients: sends that queue while one is stored are
stored together, each answered with its own message or error, exactly once, in id order,
with the events a lone send logs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from relaybus.server.groups import SendGroups
from relaybus.store.schema import messages
from tests.server.conftest import HUNG, problem
from tests.support.live import UNUSED_TLS, LiveServer

SENDERS = ("alice", "bob", "carol")
THREADS = 8
SENDS_PER_THREAD = 15


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in (*SENDERS, "dave")}


class Gate:
    """Holds the next group on the server until :meth:`release`, so that the sends posted
    meanwhile queue up and form the following group; records every group's size."""

    def __init__(self, groups: SendGroups) -> None:
        self.groups = groups
        self.sizes: list[int] = []
        self.opened = threading.Event()
        self.held = threading.Event()
        groups.on_group = self._on_group

    def _on_group(self, size: int) -> None:
        self.sizes.append(size)
        if not self.opened.is_set():
            self.held.set()
            assert self.opened.wait(HUNG), "the test never released the held group"

    def release(self, queued: int) -> None:
        """Once ``queued`` sends wait behind the held group, let it go."""
        assert self.held.wait(HUNG), "no group was held"
        assert self.groups.wait_queued(queued, HUNG), "the sends did not queue"
        self.opened.set()


@pytest.fixture
def gate(server: LiveServer) -> Iterator[Gate]:
    held = Gate(server.app.state.context.sends)
    yield held
    held.opened.set()
    server.app.state.context.sends.on_group = None


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        yield executor


def post(server: LiveServer, send: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
        return client.post("/v1/messages", json=send, headers=headers)


def group_of(
    server: LiveServer,
    gate: Gate,
    pool: ThreadPoolExecutor,
    sends: list[tuple[dict[str, Any], dict[str, str]]],
) -> list[httpx.Response]:
    """Post ``sends`` (body, headers) concurrently so that they form one group, behind a
    first send the gate holds; returns their replies in order."""
    opener = pool.submit(post, server, {"sender": "alice", "to": "bob", "body": "opener"})
    assert gate.held.wait(HUNG)
    futures: list[Future[httpx.Response]] = []
    for body, headers in sends:  # one at a time: the group keeps this order
        futures.append(pool.submit(post, server, body, **headers))
        assert gate.groups.wait_queued(len(futures), HUNG), "the send did not queue"
    gate.release(len(sends))
    assert opener.result(HUNG).status_code == 201
    replies = [f.result(HUNG) for f in futures]
    assert gate.sizes[:2] == [1, len(sends)]
    return replies


def stored_bodies(server: LiveServer) -> list[tuple[int, str]]:
    with server.service.store.read() as conn:
        rows = conn.execute(sa.select(messages.c.id, messages.c.body).order_by(messages.c.id))
        return [(int(r.id), r.body) for r in rows]


def test_concurrent_senders_have_every_acknowledged_message_stored_once_in_id_order(
    server: LiveServer, tokens: dict[str, str], pool: ThreadPoolExecutor
) -> None:
    sizes: list[int] = []
    server.app.state.context.sends.on_group = sizes.append

    def sender(thread: int) -> list[dict[str, Any]]:
        acked = []
        with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
            for n in range(SENDS_PER_THREAD):
                who = SENDERS[(thread + n) % len(SENDERS)]
                to = "tag:none" if n == 7 else ("dave" if thread % 2 else "broadcast")
                send = {"sender": who, "to": to, "body": f"t{thread} n{n}", "channel": None}
                reply = client.post(
                    "/v1/messages", json=send, headers={"Authorization": f"Bearer {tokens[who]}"}
                )
                if n == 7:
                    problem(reply, 404)  # a target that matches nobody: refused alone
                    continue
                assert reply.status_code == 201, reply.text
                acked.append(reply.json())
        return acked

    results = [f.result(HUNG) for f in [pool.submit(sender, t) for t in range(THREADS)]]
    acked = [m for thread in results for m in thread]
    assert len(acked) == THREADS * (SENDS_PER_THREAD - 1)
    # Each thread sent one after another: its acknowledgements come in id order.
    for thread in results:
        ids = [m["id"] for m in thread]
        assert ids == sorted(ids)
    # Stored exactly once each, nothing else stored, ids as acknowledged.
    by_id = {m["id"]: m for m in acked}
    assert stored_bodies(server) == sorted((i, m["body"]) for i, m in by_id.items())
    assert sorted(m["body"] for m in acked) == sorted(
        f"t{t} n{n}" for t in range(THREADS) for n in range(SENDS_PER_THREAD) if n != 7
    )
    # One message.sent per message, logged in message id order, as a lone send logs it.
    sent = server.service.events(since=0, limit=1000, kinds=["message.sent"])
    assert [e.data["message_id"] for e in sent] == sorted(by_id)
    for event in sent:
        message = by_id[event.data["message_id"]]
        assert event.agent_id == message["sender"]
        assert event.data["recipients"] == message["recipients"]
        assert event.data["to"] == message["to"]
        assert event.data["thread_id"] == message["id"]
    assert sum(sizes) >= len(acked)  # every send went through the groups


def test_a_refused_send_in_a_group_gets_its_own_error_and_the_others_are_stored(
    server: LiveServer, tokens: dict[str, str], gate: Gate, pool: ThreadPoolExecutor
) -> None:
    before = server.service.get_agent("dave").last_seen_at
    sends: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"sender": "alice", "to": "bob", "body": "first"}, {}),
        ({"sender": "dave", "to": "nobody", "body": "lost"}, {}),  # 404: unknown target
        ({"sender": "bob", "to": "carol", "body": "second"}, {}),
        ({"sender": "dave", "to": "bob", "body": "stale"}, {"X-Relaybus-Epoch": "99"}),  # 409
        ({"sender": "carol", "to": "alice", "body": "third", "reply_to": 999_999}, {}),  # 404
        ({"sender": "bob", "to": "alice", "body": "fourth", "claimable": True}, {}),
    ]
    replies = group_of(server, gate, pool, sends)
    statuses = [r.status_code for r in replies]
    assert statuses == [201, 404, 201, 409, 404, 201]
    for reply in (replies[1], replies[3], replies[4]):
        problem(reply, reply.status_code)
    assert "nobody" in replies[1].json()["detail"]
    assert "stale epoch 99" in replies[3].json()["detail"]
    good = [replies[0].json(), replies[2].json(), replies[5].json()]
    assert [m["body"] for m in good] == ["first", "second", "fourth"]
    assert [m["id"] for m in good] == sorted(m["id"] for m in good)
    assert good[2]["task_id"] is not None
    assert [b for _, b in stored_bodies(server)] == ["opener", "first", "second", "fourth"]
    # The refused sends left nothing behind, not even their sender's last_seen_at.
    assert server.service.get_agent("dave").last_seen_at == before


def test_idempotent_retries_inside_one_group_store_the_message_once(
    server: LiveServer, tokens: dict[str, str], gate: Gate, pool: ThreadPoolExecutor
) -> None:
    send = {"sender": "alice", "to": "bob", "body": "deploy at 5"}
    key = {"Idempotency-Key": "9d1c6a52-group"}
    sends: list[tuple[dict[str, Any], dict[str, str]]] = [
        (send, key),
        ({"sender": "bob", "to": "alice", "body": "between"}, {}),
        (send, key),  # a retry while the first is in the same group
        ({**send, "body": "another request"}, key),  # the key reused: 409
        (send, {"Idempotency-Key": "k" * 300}),  # 400: too long
        ({**send, "sender": "bob", "to": "carol"}, key),  # another sender's key space: stored
    ]
    replies = group_of(server, gate, pool, sends)
    assert [r.status_code for r in replies] == [201, 201, 201, 409, 400, 201]
    assert replies[2].json() == replies[0].json()
    assert replies[5].json()["id"] not in (replies[0].json()["id"], replies[1].json()["id"])
    assert [b for _, b in stored_bodies(server)] == [
        "opener",
        "deploy at 5",
        "between",
        "deploy at 5",
    ]
    # A later retry, in a group of its own, gets the same answer too.
    again = post(server, send, **key)
    assert again.status_code == 201
    assert again.json() == replies[0].json()


def test_a_group_publishes_its_messages_to_the_stream_in_id_order(
    server: LiveServer, tokens: dict[str, str], gate: Gate, pool: ThreadPoolExecutor
) -> None:
    sends: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"sender": "alice", "to": "bob", "body": f"m{n}"}, {}) for n in range(5)
    ]
    with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
        with client.stream(
            "GET", "/v1/stream", headers={"Authorization": f"Bearer {tokens['bob']}"}
        ) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: ready"
            replies = group_of(server, gate, pool, sends)
            ids = [r.json()["id"] for r in replies]
            seen: list[int] = []
            for line in lines:
                if line.startswith("data: ") and '"message.sent"' in line:
                    seen.append(json.loads(line[6:])["data"]["message_id"])
                    if len(seen) == len(ids) + 1:
                        break
    assert seen == sorted(seen)
    assert seen[1:] == sorted(ids)


def test_a_write_by_another_writer_while_a_group_is_stored_still_reaches_the_stream(
    server: LiveServer, tokens: dict[str, str], gate: Gate, pool: ThreadPoolExecutor
) -> None:
    # While a group is being stored the hub's reader leaves wake-ups to the group's
    # thread, whose read of the log at the end must cover the other writer's commit.
    with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
        headers = {"Authorization": f"Bearer {tokens['bob']}"}
        with client.stream("GET", "/v1/stream", headers=headers) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: ready"
            held = pool.submit(post, server, {"sender": "alice", "to": "bob", "body": "held"})
            assert gate.held.wait(HUNG)
            other = server.service.send("carol", "bob", "from another writer")
            gate.opened.set()
            assert held.result(HUNG).status_code == 201
            bodies: list[str] = []
            for line in lines:
                if line.startswith("data: ") and '"message.sent"' in line:
                    bodies.append(json.loads(line[6:])["data"]["message"]["body"])
                    if len(bodies) == 2:
                        break
    assert sorted(bodies) == ["from another writer", "held"]
    assert other.id
