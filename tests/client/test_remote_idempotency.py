"""Safe retries in the SDK: every remote send carries an ``Idempotency-Key`` and a send
whose answer was lost is sent again with the same key, so it is stored once. A real
server on each dialect sits behind a loopback proxy (``tests/support/proxy.py``) that forwards
the request and resets the connection instead of passing the answer on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relaybus import AsyncRelay, Conflict, Relay, StoreError
from relaybus.client import calls
from tests.support.live import LiveServer, live_server
from tests.support.proxy import Proxy

T = TypeVar("T")
HUNG = 30.0
SEND = b"POST /v1/messages "
BATCH = b"POST /v1/messages/batch "


@pytest.fixture
def srv(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    with live_server(tmp_path, database=database) as server:
        yield server


@pytest.fixture
def proxy(srv: LiveServer) -> Iterator[Proxy]:
    with Proxy([srv.url]) as running:
        yield running


def stored_bodies(srv: LiveServer, agent: str) -> list[str]:
    return [m.body for m in srv.service.inbox(agent, unread_only=False, newest_first=False)]


def test_a_send_whose_answer_was_lost_is_sent_again_with_its_key_and_stored_once(
    srv: LiveServer, proxy: Proxy
) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        proxy.drop_reply_to(SEND)
        sent = alice.send("bob", "exactly once")
    assert proxy.dropped == 1
    keys = proxy.header_values("Idempotency-Key", SEND)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert srv.service.get_message(sent.id) == sent
    assert stored_bodies(srv, "bob") == ["exactly once"]


def test_each_logical_send_gets_its_own_key(srv: LiveServer, proxy: Proxy) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        first = alice.send("bob", "same words")
        second = alice.send("bob", "same words")
    assert first.id != second.id
    keys = proxy.header_values("Idempotency-Key", SEND)
    assert len(keys) == 2 and keys[0] != keys[1]
    assert stored_bodies(srv, "bob") == ["same words", "same words"]


def test_a_caller_key_is_sent_and_a_later_send_with_it_returns_the_original(
    srv: LiveServer, proxy: Proxy
) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        first = alice.send("bob", "hi", idempotency_key='order "42"')
    with Relay.open(url=proxy.url) as elsewhere:
        again = elsewhere.agent("alice").send("bob", "hi", idempotency_key='order "42"')
        with pytest.raises(Conflict, match="different request"):
            elsewhere.agent("alice").send("bob", "bye", idempotency_key='order "42"')
    assert again == first
    assert proxy.header_values("Idempotency-Key", SEND)[0] == r'"order \"42\""'
    assert stored_bodies(srv, "bob") == ["hi"]


def test_a_send_whose_retry_was_dropped_too_is_sent_a_third_time_and_stored_once(
    srv: LiveServer, proxy: Proxy
) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        proxy.drop_reply_to(SEND)
        proxy.drop_reply_to(SEND)
        sent = alice.send("bob", "exactly once")
    assert proxy.dropped == 2
    keys = proxy.header_values("Idempotency-Key", SEND)
    assert len(keys) == 3 and keys[0] == keys[1] == keys[2]
    assert srv.service.get_message(sent.id) == sent
    assert stored_bodies(srv, "bob") == ["exactly once"]


def test_when_every_answer_is_lost_the_error_names_the_key_to_send_again_with(
    srv: LiveServer, proxy: Proxy
) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        for _ in range(3):  # every attempt
            proxy.drop_reply_to(SEND)
        with pytest.raises(StoreError, match="retry with idempotency_key=") as lost:
            alice.send("bob", "maybe sent")
        key = lost.value.details["idempotency_key"]
        sent = alice.send("bob", "maybe sent", idempotency_key=key)
    assert proxy.dropped == 3
    assert stored_bodies(srv, "bob") == ["maybe sent"]
    assert srv.service.get_message(sent.id) == sent


def test_a_lost_answer_to_a_call_without_a_key_is_not_sent_again(
    srv: LiveServer, proxy: Proxy
) -> None:
    with Relay.open(url=proxy.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        task = alice.send("bob", "job", claimable=True).task_id
        assert task is not None
        proxy.drop_reply_to(b"/claim ")
        with pytest.raises(StoreError, match="cannot reach relay server"):
            relay.agent("bob").claim(task)
    assert len(proxy.header_values("Host", b"/claim ")) == 1


def test_a_batch_whose_answer_was_lost_is_stored_once(srv: LiveServer, proxy: Proxy) -> None:
    with Relay.open(url=proxy.url) as relay:
        relay.register("alice")
        relay.register("bob")
        proxy.drop_reply_to(BATCH)
        batch = [{"to": "bob", "body": "one"}, {"to": "bob", "body": "two"}]
        sent = relay.backend.run(calls.send_many("alice", batch, workspace=relay.workspace))
    assert proxy.dropped == 1
    assert [m.body for m in sent] == ["one", "two"]
    assert stored_bodies(srv, "bob") == ["one", "two"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop, failing it if it hangs."""

    async def bounded() -> T:
        async with asyncio.timeout(HUNG):
            return await coro

    return asyncio.run(bounded())


def test_the_async_sdk_sends_again_with_the_same_key_too(srv: LiveServer, proxy: Proxy) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(url=proxy.url) as relay:
            alice = await relay.register("alice")
            bob = await relay.register("bob")
            proxy.drop_reply_to(SEND)
            sent = await alice.send("bob", "exactly once")
            proxy.drop_reply_to(SEND)
            reply = await bob.reply(sent, "and a reply", idempotency_key="reply-1")
        assert srv.service.get_message(reply.id) == reply

    run(scenario())
    keys = proxy.header_values("Idempotency-Key", SEND)
    assert len(keys) == 4 and keys[0] == keys[1] and keys[2] == keys[3] == '"reply-1"'
    assert stored_bodies(srv, "bob") == ["exactly once"]
    assert stored_bodies(srv, "alice") == ["and a reply"]
