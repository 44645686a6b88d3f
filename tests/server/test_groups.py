"""The group-commit queue on its own (``relaybus.server.groups``), over a real store on
each dialect: sends from the event loop (``asend``, the hot route's) and from worker
threads (``send``) share groups, each gets its own outcome, and a failure reaches the
sender it belongs to without stopping the queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from relaybus.errors import NotFound, RelayError, StoreError
from relaybus.models import Event, Message
from relaybus.server.groups import SendGroups
from relaybus.server.hub import Hub
from relaybus.server.metrics import Metrics
from relaybus.service import Service
from relaybus.service.messages import GroupSend
from tests.server.conftest import HUNG


@pytest.fixture
def groups(service: Service) -> SendGroups:
    for name in ("alice", "bob"):
        service.register(name)
    return SendGroups(service, Hub(service), Metrics())


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def hold_first_group(groups: SendGroups) -> tuple[threading.Event, threading.Event, list[int]]:
    """Make the next group wait (inside its store) until the returned ``release`` is set;
    ``held`` is set once it waits; every group's size is recorded."""
    held, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    def on_group(size: int) -> None:
        sizes.append(size)
        if not held.is_set():
            held.set()
            assert release.wait(HUNG), "the test never released the held group"

    groups.on_group = on_group
    return held, release, sizes


def test_loop_and_thread_sends_share_a_group_and_each_gets_its_own_message(
    groups: SendGroups, pool: ThreadPoolExecutor
) -> None:
    held, release, sizes = hold_first_group(groups)

    async def main() -> tuple[Message, list[Message], Message]:
        first = asyncio.create_task(groups.asend(GroupSend("alice", "bob", "first")))
        assert await asyncio.to_thread(held.wait, HUNG)
        on_loop = [
            asyncio.create_task(groups.asend(GroupSend("alice", "bob", f"loop {n}")))
            for n in range(3)
        ]
        assert await asyncio.to_thread(groups.wait_queued, 3, HUNG)
        threaded = pool.submit(groups.send, GroupSend("bob", "alice", "thread"))
        assert await asyncio.to_thread(groups.wait_queued, 4, HUNG)
        release.set()
        return await first, list(await asyncio.gather(*on_loop)), threaded.result(HUNG)

    first, on_loop, threaded = asyncio.run(main())
    assert sizes == [1, 4]
    assert [m.body for m in on_loop] == ["loop 0", "loop 1", "loop 2"]
    ids = [first.id, *(m.id for m in on_loop), threaded.id]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert threaded.sender == "bob" and threaded.recipients == ["alice"]


def test_a_refused_loop_send_gets_its_own_error_and_the_queue_goes_on(
    groups: SendGroups,
) -> None:
    async def main() -> tuple[BaseException | Message, Message]:
        refused = await asyncio.gather(
            groups.asend(GroupSend("alice", "nobody", "lost")), return_exceptions=True
        )
        return refused[0], await groups.asend(GroupSend("alice", "bob", "next"))

    refused, following = asyncio.run(main())
    assert isinstance(refused, NotFound)
    assert following.body == "next"


def test_a_failed_store_reaches_the_loop_sender_and_the_queue_goes_on(
    groups: SendGroups, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_group = service.send_group
    failed = threading.Event()

    def send_group(
        sends: Sequence[GroupSend], *, log: list[Event] | None = None
    ) -> list[Message | RelayError]:
        if not failed.is_set():
            failed.set()
            raise StoreError("the database is gone for a moment")
        return store_group(sends, log=log)

    monkeypatch.setattr(service, "send_group", send_group)

    async def main() -> tuple[BaseException | Message, Message]:
        lost = await asyncio.gather(
            groups.asend(GroupSend("alice", "bob", "lost")), return_exceptions=True
        )
        return lost[0], await groups.asend(GroupSend("alice", "bob", "next"))

    lost, following = asyncio.run(main())
    assert isinstance(lost, StoreError)
    assert following.body == "next"
    assert [m.body for m in service.inbox("bob")] == ["next"]


def test_a_group_that_fails_as_a_whole_stores_each_loop_send_alone(
    groups: SendGroups, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, release, sizes = hold_first_group(groups)
    store_group = service.send_group

    def send_group(
        sends: Sequence[GroupSend], *, log: list[Event] | None = None
    ) -> list[Message | RelayError]:
        if len(sends) > 1:
            raise StoreError("this group cannot be stored")
        return store_group(sends, log=log)

    monkeypatch.setattr(service, "send_group", send_group)

    async def main() -> list[BaseException | Message]:
        first = asyncio.create_task(groups.asend(GroupSend("alice", "bob", "first")))
        assert await asyncio.to_thread(held.wait, HUNG)
        sends = [
            GroupSend("alice", "bob", "one"),
            GroupSend("alice", "nobody", "refused"),
            GroupSend("bob", "alice", "two"),
        ]
        tasks = [asyncio.create_task(groups.asend(s)) for s in sends]
        assert await asyncio.to_thread(groups.wait_queued, len(sends), HUNG)
        release.set()
        await first
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    one, refused, two = asyncio.run(main())
    assert sizes[:2] == [1, 3]
    assert isinstance(one, Message) and one.body == "one"
    assert isinstance(refused, NotFound)
    assert isinstance(two, Message) and two.body == "two" and two.id > one.id


def test_a_thread_send_queued_behind_a_loop_send_is_answered(
    groups: SendGroups, pool: ThreadPoolExecutor
) -> None:
    # The lead passes from the loop's group (stored by the queue's driver thread) to a
    # thread sender, who stores its own group.
    held, release, sizes = hold_first_group(groups)

    async def main() -> tuple[Message, Message]:
        first = asyncio.create_task(groups.asend(GroupSend("alice", "bob", "first")))
        assert await asyncio.to_thread(held.wait, HUNG)
        threaded: Future[Message] = pool.submit(groups.send, GroupSend("bob", "alice", "t"))
        assert await asyncio.to_thread(groups.wait_queued, 1, HUNG)
        release.set()
        return await first, await asyncio.wrap_future(threaded)

    first, threaded = asyncio.run(main())
    assert sizes == [1, 1]
    assert threaded.id > first.id


def test_a_loop_send_after_close_is_still_answered(groups: SendGroups) -> None:
    async def main() -> tuple[Message, Message]:
        before = await groups.asend(GroupSend("alice", "bob", "before"))
        groups.close()
        return before, await groups.asend(GroupSend("alice", "bob", "after"))

    before, after = asyncio.run(main())
    assert after.id > before.id
