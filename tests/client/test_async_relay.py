"""The asyncio SDK: every operation over a server and on the embedded store, the same
errors, and the async iterator of incoming messages across a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from relaybus import (
    AgentStatus,
    AsyncAgentHandle,
    AsyncRelay,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TaskStatus,
    TooLarge,
)
from relaybus.client.aio_backends import AsyncEmbeddedBackend, AsyncRemoteBackend
from relaybus.settings import Settings
from tests.support.live import UNUSED_TLS, LiveServer, live_server

T = TypeVar("T")
HUNG = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop, failing it if it hangs."""

    async def bounded() -> T:
        async with asyncio.timeout(HUNG):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def srv(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server", database=database) as server:
        yield server


@pytest.fixture(params=["remote", "embedded"])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, database: str | None
) -> Iterator[dict[str, Any]]:
    """The arguments of ``AsyncRelay.open``: a live server, or the embedded store (a folder
    or the PostgreSQL database), on each dialect."""
    if request.param == "embedded":
        yield {"dir": tmp_path / "embedded", "database": database}
        return
    with live_server(tmp_path / "server", database=database) as server:
        yield {"url": server.url}


def test_open_picks_the_server_or_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_URL", "http://127.0.0.1:4850")
    remote = AsyncRelay.open(token="rb_x")
    assert isinstance(remote.backend, AsyncRemoteBackend)
    assert remote.backend.settings.token == "rb_x"
    embedded = AsyncRelay.open(dir=tmp_path)
    assert isinstance(embedded.backend, AsyncEmbeddedBackend)
    with pytest.raises(InvalidInput, match="not both"):
        AsyncRelay.open(url="http://127.0.0.1:4850", dir=tmp_path)

    async def close() -> None:
        await remote.aclose()
        await embedded.aclose()

    run(close())


def test_every_operation_through_the_async_sdk(where: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(**where) as relay:
            alice = await relay.register("alice", label="Alice", tags=["api"])
            bob = await relay.register("bob", capabilities=["review"], channels=["dev"])
            assert isinstance(alice, AsyncAgentHandle)
            assert (alice.id, alice.epoch) == ("alice", 1)
            assert (await alice.info()).label == "Alice"
            assert [a.id for a in await relay.agents()] == ["alice", "bob"]
            assert [a.id for a in await relay.agents(capability="review")] == ["bob"]
            assert (await relay.get_agent("bob")).channels == ["dev"]

            question = await alice.send("bob", "ready?", subject="PR 7", priority="high")
            assert question.recipients == ["bob"]
            assert [m.id for m in await bob.inbox()] == [question.id]
            assert await bob.unread_count() == 1
            answer = await bob.reply(question, "yes")
            assert (answer.to, answer.thread_id) == ("alice", question.id)
            assert [m.id for m in await relay.thread(answer.id)] == [question.id, answer.id]
            assert (await relay.message(question.id)).subject == "PR 7"
            assert [m.id for m in await bob.read()] == [question.id]
            assert await bob.unread_count() == 0
            (receipt,) = await relay.deliveries(question.id, until="read", timeout=HUNG)
            assert (receipt.state.value, receipt.via) == ("read", "inbox")
            note = await alice.send("bob", "fyi")
            assert await bob.mark_delivered([note.id], via="tmux") == 1
            assert [m.id for m in await bob.wait(HUNG, since=question.id, via="pty")] == [note.id]
            (receipt,) = await relay.deliveries(note.id)
            assert (receipt.state.value, receipt.via) == ("delivered", "tmux")
            assert await bob.mark_read([note.id], via="pty") == 1
            more = [(await alice.send("bob", str(n))).id for n in range(3)]
            assert await bob.mark_read([more[0]]) == 1
            assert await bob.mark_read(up_to=more[1]) == 1
            assert [m.id for m in await bob.wait(timeout=HUNG)] == [more[2]]
            assert bob.cursor == more[2]
            assert await bob.wait(timeout=0.1) == []

            task_id = (await alice.send("cap:review", "review", claimable=True)).task_id
            assert task_id is not None
            assert (await bob.claim(task_id, lease=60)).assignee == "bob"
            assert (await bob.renew(task_id, lease=120)).lease_expires_at is not None
            progress = await bob.update_task(task_id, progress=50, note="half")
            assert progress.status is TaskStatus.IN_PROGRESS
            assert (await bob.release(task_id)).status is TaskStatus.OPEN
            assert (await relay.update_task(task_id, status="canceled")).status.terminal
            assert [t.id for t in await relay.tasks(status="canceled")] == [task_id]
            assert (await relay.task(task_id)).status is TaskStatus.CANCELED
            assert [h.kind for h in await relay.task_history(task_id)][-1] == "canceled"

            assert (await bob.heartbeat("busy")).status is AgentStatus.BUSY
            assert (await bob.update(label="Bob")).label == "Bob"
            last = await relay.last_event_id()
            assert (await relay.events(since=0))[-1].id == last
            await bob.unregister()
            woken = await relay.wait_events(HUNG, since=last)
            assert [e.kind for e in woken] == ["agent.unregistered"]
            with pytest.raises(NotFound):
                await relay.agent("bob")
            report = await relay.prune(message_days=0)
            assert report.messages == 7

    run(scenario())


def test_the_async_sdk_raises_the_relay_errors(where: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(**where) as relay:
            alice = await relay.register("alice")
            bob = await relay.register("bob")
            carol = await relay.register("carol")
            with pytest.raises(NotFound, match="did you mean 'bob'"):
                await alice.send("bobby", "hi")
            with pytest.raises(InvalidInput, match="tag:NAME"):
                await alice.send("what:ever", "hi")
            with pytest.raises(TooLarge):
                await alice.send("bob", "x" * (relay.backend.settings.max_body_bytes + 1))
            # Offered to bob and carol: only recipients claim.
            task_id = (await alice.send("broadcast", "job", claimable=True)).task_id
            assert task_id is not None
            await bob.claim(task_id)
            with pytest.raises(Conflict) as caught:
                await carol.claim(task_id)
            assert caught.value.details["holder"] == "bob"
            with pytest.raises(Forbidden):
                await carol.update_task(task_id, status="done")
            await relay.register("alice")  # a new instance fences the old handle off
            with pytest.raises(Conflict, match="stale epoch"):
                await alice.send("bob", "from the past")

    run(scenario())


def test_an_async_agent_handle_sees_and_claims_only_the_tasks_of_its_messages(
    where: dict[str, Any],
) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(**where) as relay:
            alice = await relay.register("alice")
            bob = await relay.register("bob")
            carol = await relay.register("carol")
            hidden = (await bob.send("carol", "secret", claimable=True)).task_id
            mine = (await bob.send("alice", "yours", claimable=True)).task_id
            assert hidden is not None and mine is not None
            assert [t.id for t in await alice.tasks()] == [mine]
            assert [t.id for t in await carol.tasks()] == [hidden]
            assert [t.id for t in await bob.tasks()] == [mine, hidden]
            assert [t.id for t in await relay.tasks()] == [mine, hidden]  # the operator
            for call in (alice.task, alice.task_history, alice.claim):
                with pytest.raises(NotFound, match=f"^no task {hidden}$"):
                    await call(hidden)
            with pytest.raises(Forbidden):
                await bob.claim(hidden)  # its creator: only recipients claim
            assert (await carol.claim(hidden)).assignee == "carol"
            assert [e.kind for e in await carol.task_history(hidden)] == ["created", "claimed"]

    run(scenario())


def test_an_async_agent_receives_a_message_sent_by_another_agent(srv: LiveServer) -> None:
    connected = asyncio.Event()

    async def saw(response: httpx.Response) -> None:
        if response.url.path == "/v1/stream":
            connected.set()

    async def scenario() -> None:
        client = httpx.AsyncClient(
            base_url=srv.url, event_hooks={"response": [saw]}, verify=UNUSED_TLS
        )
        relay = AsyncRelay(AsyncRemoteBackend(Settings(url=srv.url), client=client))
        async with relay, AsyncRelay.open(url=srv.url) as elsewhere:
            bob = await relay.register("bob")
            alice = await elsewhere.register("alice")
            async with contextlib.aclosing(bob.messages()) as incoming:
                first = asyncio.create_task(anext(incoming))
                await connected.wait()  # bob's stream is open: the send is pushed live
                sent = await alice.send("bob", "hello over SSE")
                got = await first
            assert got == await relay.message(sent.id)
            assert got.sender == "alice"

    run(scenario())


def test_async_messages_resume_after_a_server_restart_with_nothing_lost_or_repeated(
    srv: LiveServer,
) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(url=srv.url) as relay:
            alice = await relay.register("alice")
            bob = await relay.register("bob")
            since = await relay.last_event_id()
            incoming = bob.messages(since=since, max_backoff=0.3)
            async with contextlib.aclosing(incoming):
                first = await alice.send("bob", "before the restart")
                assert (await anext(incoming)).id == first.id
                await asyncio.to_thread(srv.stop)
                # Written while no server runs, straight into the database.
                during = srv.service.send("alice", "bob", "while the server was down")
                await asyncio.to_thread(srv.start)
                after = await alice.send("bob", "after the restart")
                assert (await anext(incoming)).id == during.id
                assert (await anext(incoming)).id == after.id
                last = await alice.send("bob", "one more")
                assert (await anext(incoming)).id == last.id

    run(scenario())


def test_async_messages_on_the_embedded_store(tmp_path: Path, database: str | None) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(dir=tmp_path, database=database) as relay:
            alice = await relay.register("alice")
            bob = await relay.register("bob")
            await relay.register("carol")
            early = await alice.send("bob", "already waiting")
            async with contextlib.aclosing(bob.messages(unread=True)) as incoming:
                assert (await anext(incoming)).id == early.id
                await alice.send("carol", "not for bob")
                late = await alice.send("bob", "new")
                assert (await anext(incoming)).id == late.id

    run(scenario())


def test_a_cancelled_embedded_wait_lets_go_at_once(tmp_path: Path, database: str | None) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(dir=tmp_path, database=database) as relay:
            bob = await relay.register("bob")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bob.wait(timeout=HUNG), 0.2)
            alice = await relay.register("alice")
            sent = await alice.send("bob", "after the cancel")
            assert [m.id for m in await bob.wait(timeout=HUNG)] == [sent.id]

    run(scenario())


def test_closing_the_embedded_relay_lets_a_cancelled_wait_finish_before_the_store_closes(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cancelled wait's worker thread reads once more when its step ends: after the store
    # closed, that read would open a connection nothing ever closes.
    relay = AsyncRelay.open(dir=tmp_path, database=database)
    assert isinstance(relay.backend, AsyncEmbeddedBackend)
    relay.backend.wait_step = 0.3  # (the step the cancelled wait runs out in its thread)
    store = relay.backend.service.store
    closed = threading.Event()
    late_reads: list[str] = []
    real_read, real_close = store.read, store.close

    def read() -> contextlib.AbstractContextManager[Any]:
        if closed.is_set():
            late_reads.append(threading.current_thread().name)
        return real_read()

    def close() -> None:
        closed.set()
        real_close()

    monkeypatch.setattr(store, "read", read)
    monkeypatch.setattr(store, "close", close)

    async def scenario() -> None:
        async with relay:
            bob = await relay.register("bob")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bob.wait(timeout=HUNG), 0.05)

    run(scenario())  # asyncio.run returns once every worker thread has finished
    assert closed.is_set()
    assert late_reads == []


def test_an_async_token_is_the_one_the_server_issued(srv: LiveServer) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(url=srv.url) as relay:
            me = await relay.register("alice")
            assert me.token is not None and me.token.startswith("rb_")
            assert isinstance(relay.backend, AsyncRemoteBackend)
            assert relay.backend.session.tokens == {"alice": me.token}

    run(scenario())


def test_an_async_agent_renews_the_leases_it_holds(where: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(**where) as relay:
            author = await relay.register("author")
            worker = await relay.register("worker")
            task_id = (await author.send("worker", "job", claimable=True)).task_id
            assert task_id is not None
            assert (await worker.renew_held()).renewed == []
            await worker.claim(task_id, lease=30.0)
            renewal = await worker.renew_held()
            assert renewal.renewed == [task_id]
            assert renewal.next_in == pytest.approx(10.0)

    run(scenario())
