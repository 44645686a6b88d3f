"""The hub on its own, over a real store on each dialect: fan-out, visibility, the
slow-subscriber limit, long-poll wake-ups and shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import Any, TypeVar

import pytest

from relaybus.models import Event, Message
from relaybus.server import hub as hub_module
from relaybus.server.groups import SendGroups, _Waiter
from relaybus.server.hub import Hub, Item, Subscription
from relaybus.server.metrics import Metrics
from relaybus.service import Service
from relaybus.service.messages import GroupSend
from relaybus.store import Store

#: Seconds before a wait in these tests counts as hung: far above any real wake-up.
HUNG = 30.0

T = TypeVar("T")


def run(main: Callable[[Hub], Coroutine[Any, Any, T]], service: Service, **kwargs: Any) -> T:
    """Run ``main(hub)`` on a fresh event loop with a started hub, stopping it after."""

    async def wrapper() -> T:
        hub = Hub(service, **kwargs)
        await hub.start()
        try:
            return await main(hub)
        finally:
            await hub.stop()

    return asyncio.run(wrapper())


async def off_loop(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


async def next_items(sub: Subscription, wanted: int) -> list[Item]:
    """The next ``wanted`` live items of ``sub``; fails if they do not come."""
    found: list[Item] = []
    async with asyncio.timeout(HUNG):
        while len(found) < wanted:
            batch = await sub.get(HUNG)
            assert batch is not None, f"subscription ended: {sub.reason}"
            found.extend(batch)
    return found


def sent_ids(items: list[Item]) -> list[int]:
    """Message ids of the ``message.sent`` items, in order."""
    return [json.loads(i.json)["data"]["message_id"] for i in items if i.kind == "message.sent"]


def register(service: Service, *names: str) -> None:
    for name in names:
        service.register(name)


def test_a_send_reaches_the_recipient_with_the_full_message(service: Service) -> None:
    register(service, "alice", "bob")

    async def main(hub: Hub) -> list[Item]:
        with hub.subscribe("default", "bob", "ws") as sub:
            await off_loop(lambda: service.send("alice", "bob", "hello bob"))
            return [i for i in await next_items(sub, 1)]

    items = run(main, service)
    event = json.loads(items[0].json)
    assert event["kind"] == "message.sent"
    assert event["data"]["message"]["body"] == "hello bob"
    # The recipients travel once per frame, as the event's own data.
    assert event["data"]["recipients"] == ["bob"]
    assert "recipients" not in event["data"]["message"]
    assert items[0].sse.startswith(f"id: {items[0].id}\nevent: message.sent\ndata: {{".encode())
    assert json.loads(items[0].ws) == {"type": "event", "event": event}


def test_an_event_is_serialised_once_for_every_subscriber(service: Service) -> None:
    register(service, "alice")
    for name in ("bob", "carol"):
        service.register(name, tags=["team"])

    async def main(hub: Hub) -> list[list[Item]]:
        subs = [hub.subscribe("default", None, "sse"), hub.subscribe("default", "bob", "sse")]
        subs.append(hub.subscribe("default", "carol", "sse"))
        await off_loop(lambda: service.send("alice", "tag:team", "to both"))
        found = [await next_items(s, 1) for s in subs]
        for sub in subs:
            hub.unsubscribe(sub)
        return found

    admin, bob, carol = run(main, service)
    assert admin[0] is bob[0] is carol[0]


def test_each_agent_sees_only_its_own_deliveries_and_presence(service: Service) -> None:
    register(service, "alice", "bob", "carol")

    async def main(hub: Hub) -> dict[str, list[Item]]:
        subs = {name: hub.subscribe("default", name, "ws") for name in ("alice", "bob", "carol")}
        subs["admin"] = hub.subscribe("default", None, "ws")
        await off_loop(lambda: service.send("alice", "bob", "for bob only"))
        await off_loop(lambda: service.send("alice", "carol", "for carol"))
        await off_loop(lambda: service.register("dave"))
        found = {
            "alice": await next_items(subs["alice"], 3),
            "bob": await next_items(subs["bob"], 2),
            "carol": await next_items(subs["carol"], 2),
            "admin": await next_items(subs["admin"], 3),
        }
        for sub in subs.values():
            hub.unsubscribe(sub)
        return found

    found = run(main, service)
    kinds = {name: [i.kind for i in items] for name, items in found.items()}
    assert kinds["alice"] == ["message.sent", "message.sent", "agent.registered"]
    assert kinds["bob"] == ["message.sent", "agent.registered"]  # not carol's message
    assert kinds["carol"] == ["message.sent", "agent.registered"]  # not bob's
    bodies = {
        name: [json.loads(i.json)["data"]["message"]["body"] for i in items[:-1]]
        for name, items in found.items()
    }
    assert bodies["bob"] == ["for bob only"]
    assert bodies["carol"] == ["for carol"]
    assert bodies["admin"] == ["for bob only", "for carol"]


def test_other_workspaces_are_invisible(service: Service) -> None:
    register(service, "alice", "bob")
    service.register("alice", workspace="other")
    service.register("bob", workspace="other")

    async def main(hub: Hub) -> list[Item]:
        with hub.subscribe("default", None, "sse") as admin:
            await off_loop(lambda: service.send("alice", "bob", "elsewhere", workspace="other"))
            await off_loop(lambda: service.send("alice", "bob", "here"))
            return await next_items(admin, 1)

    items = run(main, service)
    assert [json.loads(i.json)["data"]["message"]["body"] for i in items] == ["here"]


def test_task_events_reach_creator_offered_agents_and_holder_only(service: Service) -> None:
    register(service, "alice", "dave")
    for name in ("bob", "carol"):
        service.register(name, tags=["team"])

    def work() -> list[Event]:
        task_id = service.send("alice", "tag:team", "fix the build", claimable=True).task_id
        assert task_id is not None
        service.claim(task_id, "bob")
        service.update_task(task_id, None, progress=50)  # admin: no actor on the event
        service.mark_read("carol", up_to=10_000)
        service.prune(message_days=10_000.0, agent_days=10_000.0)  # a relay.* event
        return service.events(since=0, limit=1000)

    hub = Hub(service)
    events = work()
    seen = {
        name: [e.kind for e in hub.visible_to(name, events, "default")]
        for name in ("alice", "bob", "carol", "dave")
    }
    tasks = ["task.created", "message.sent", "task.claimed", "task.updated"]
    registrations = ["agent.registered"] * 4
    assert seen["alice"] == registrations + tasks
    assert seen["bob"] == registrations + tasks
    assert seen["carol"] == [*registrations, *tasks, "message.read"]
    assert seen["dave"] == registrations
    assert [e.kind for e in hub.visible_to(None, events, "default")][-1] == "relay.pruned"
    assert hub.visible_to("alice", events, "other") == []


def test_a_slow_subscriber_is_dropped_and_the_others_keep_everything(service: Service) -> None:
    register(service, "alice", "bob")

    async def main(hub: Hub) -> tuple[list[int], list[int], str | None]:
        with (
            hub.subscribe("default", "bob", "ws") as slow,
            hub.subscribe("default", "bob", "sse") as fast,
        ):
            sent = []
            got: list[Item] = []
            for n in range(6):
                message = await off_loop(partial(service.send, "alice", "bob", f"m{n}"))
                sent.append(message.id)
                got.extend(await next_items(fast, 1))
            assert await slow.get(0) is None
            return sent, sent_ids(got), slow.reason

    sent, fast_got, reason = run(main, service, queue_limit=3)
    assert fast_got == sent
    assert reason is not None and "behind" in reason


def test_replay_then_live_has_no_gap_and_no_duplicate(service: Service) -> None:
    register(service, "alice", "bob")
    first = service.send("alice", "bob", "before").id
    cursor = service.last_event_id()
    missed = [service.send("alice", "bob", f"missed {n}").id for n in range(3)]

    async def main(hub: Hub) -> list[int]:
        got: list[Item] = []
        with hub.subscribe("default", "bob", "sse") as sub:
            # Sent after subscribing, possibly while the replay runs: live.
            sending = asyncio.create_task(off_loop(lambda: service.send("alice", "bob", "live")))
            async for items in hub.replay(sub, cursor):
                got.extend(items)
            await sending
            replayed = got[-1].id
            got.extend(i for i in await next_items(sub, 1) if i.id > replayed)
        return sent_ids(got)

    ids = run(main, service)
    assert first not in ids
    assert ids[:3] == missed
    assert len(ids) == 4 and len(set(ids)) == 4


def test_wait_for_wakes_on_a_commit(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a wake-up the waiter would sleep past the test's timeout.
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 600.0)
    register(service, "alice", "bob")
    checked = threading.Event()

    def check() -> list[Message]:
        found = service.inbox("bob", unread_only=True)
        checked.set()
        return found

    async def main(hub: Hub) -> tuple[list[Message], int]:
        waiting = asyncio.create_task(hub.wait_for(check, HUNG))
        assert await off_loop(lambda: checked.wait(HUNG))
        parked = hub.connections["longpoll"]
        await off_loop(lambda: service.send("alice", "bob", "wake up"))
        return await asyncio.wait_for(waiting, HUNG), parked

    found, parked = run(main, service)
    assert parked == 1
    assert [m.body for m in found] == ["wake up"]


def test_wait_for_returns_the_falsy_result_on_timeout(service: Service) -> None:
    async def main(hub: Hub) -> list[int]:
        return await hub.wait_for(list[int], 0.01)

    assert run(main, service) == []


def test_stop_ends_subscriptions_and_long_polls(service: Service) -> None:
    async def main(hub: Hub) -> tuple[list[Item] | None, object, list[Item] | None]:
        sub = hub.subscribe("default", None, "sse")
        polling = asyncio.create_task(hub.wait_for(list[int], HUNG))
        getting = asyncio.create_task(sub.get(HUNG))
        await hub.stop()
        got, polled = await asyncio.wait_for(asyncio.gather(getting, polling), HUNG)
        late = hub.subscribe("default", None, "sse")
        return got, polled, await late.get(HUNG)

    got, polled, late = run(main, service)
    assert got is None and polled == [] and late is None


def test_connections_are_counted_by_transport(service: Service) -> None:
    async def main(hub: Hub) -> list[dict[str, int]]:
        counts = []
        with hub.subscribe("default", None, "sse"), hub.subscribe("default", "bob", "ws"):
            counts.append(dict(hub.connections))
        counts.append(dict(hub.connections))
        return counts

    inside, after = run(main, service)
    assert inside == {"sse": 1, "ws": 1, "longpoll": 0}
    assert after == {"sse": 0, "ws": 0, "longpoll": 0}


async def _listening(hub: Hub, service: Service, sub: Subscription) -> None:
    # A send outside hub.writing() reaches ``sub`` only through the reader thread's
    # wake-up: once it has, that thread listens (and writing() mutes its own commits).
    await off_loop(lambda: service.send("alice", "bob", "the reader listens"))
    await next_items(sub, 1)


def _send_writing(hub: Hub, service: Service, body: str) -> Message:
    with hub.writing():
        message = service.send("alice", "bob", body)
        hub.remember([message])
    return message


def test_a_local_write_reaches_subscribers_without_waking_the_reader_thread(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader thread would not re-check within the test's timeout: the write's own
    # thread fans it out when its writing() block ends.
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 600.0)
    register(service, "alice", "bob")

    async def main(hub: Hub) -> tuple[list[int], int]:
        with hub.subscribe("default", "bob", "sse") as sub:
            await _listening(hub, service, sub)
            sent = [
                (await off_loop(partial(_send_writing, hub, service, f"m{n}"))).id for n in range(3)
            ]
            return sent_ids(await next_items(sub, 3)), sent[-1]

    got, last = run(main, service)
    assert got == sorted(got) and got[-1] == last and len(got) == 3


def test_a_local_write_whose_read_back_fails_still_reaches_subscribers(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No event missed: the write's own commit woke nobody in this process (muted), so
    # when the read at the block's end fails, the reader thread's re-check catches up.
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 0.05)
    register(service, "alice", "bob")
    tail = service.log_tail
    failed = threading.Event()

    def log_tail(cursor: int, limit: int) -> list[Event]:
        if threading.current_thread().name != "relaybus-hub" and not failed.is_set():
            failed.set()
            raise RuntimeError("the read after a local write fails")
        return tail(cursor, limit)

    async def main(hub: Hub) -> tuple[list[int], int]:
        with hub.subscribe("default", "bob", "sse") as sub:
            await _listening(hub, service, sub)
            monkeypatch.setattr(service, "log_tail", log_tail)
            sent = await off_loop(partial(_send_writing, hub, service, "after a failed read"))
            return sent_ids(await next_items(sub, 1)), sent.id

    got, sent = run(main, service)
    assert failed.is_set()
    assert got == [sent]


def test_an_event_read_while_nobody_subscribed_reaches_who_subscribes_before_its_fan_out(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub serialises an event of a workspace without subscribers only if one comes
    # before the event's fan-out runs on the loop: here the loop is held while a local
    # write is read back, and subscribes before it runs that fan-out.
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 600.0)
    register(service, "alice", "bob")

    async def main(hub: Hub) -> tuple[list[Item], int]:
        with hub.subscribe("default", "bob", "sse") as first:
            await _listening(hub, service, first)
        sent: list[Message] = []
        writer = threading.Thread(
            target=lambda: sent.append(_send_writing(hub, service, "nobody listened"))
        )
        writer.start()
        writer.join(HUNG)  # holds the loop: the write's fan-out waits in its queue
        assert sent, "the write did not finish"
        with hub.subscribe("default", "bob", "sse") as sub:
            return await next_items(sub, 1), sent[0].id

    items, sent = run(main, service)
    assert sent_ids(items) == [sent]
    event = json.loads(items[0].json)
    assert event["data"]["message"]["body"] == "nobody listened"
    assert event["data"]["recipients"] == ["bob"]


def _watch_reads(service: Service, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # The names of the threads that read the log's tail from now on.
    readers: list[str] = []
    tail = service.log_tail

    def log_tail(cursor: int, limit: int = 1000) -> list[Event]:
        readers.append(threading.current_thread().name)
        return tail(cursor, limit)

    monkeypatch.setattr(service, "log_tail", log_tail)
    return readers


def test_a_group_is_fanned_out_as_its_writer_logged_it_without_reading_the_log_back(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The frames are the same either way: those of a read of the log, made afterwards.
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 600.0)
    register(service, "alice", "bob")

    async def main(hub: Hub) -> tuple[list[Item], list[Item], list[str]]:
        groups = SendGroups(service, hub, Metrics())
        with hub.subscribe("default", None, "sse") as sub:
            await _listening(hub, service, sub)
            since = hub.last_id
            readers = _watch_reads(service, monkeypatch)
            sends = [GroupSend("alice", "bob", "hello", claimable=True)] + [
                GroupSend("alice", "bob", f"m{n}", meta={"n": n}) for n in range(3)
            ]
            await off_loop(lambda: service.send_group(sends[:0]))  # nothing: no event
            await off_loop(lambda: groups._store([_Waiter(s) for s in sends]))
            live = await next_items(sub, 5)  # 4 message.sent, 1 task.created
            read = await off_loop(lambda: hub._items(service.log_tail(since)))
            return live, read, readers[:-1]

    live, read, readers = run(main, service)
    assert [(i.id, i.kind, i.json, i.audience) for i in live] == [
        (i.id, i.kind, i.json, i.audience) for i in read
    ]
    if service.store.dialect == "sqlite":
        assert readers == []  # no read by the writer, nor by the reader thread
    else:
        assert readers  # PostgreSQL reads back (see Hub._follows)


def test_a_commit_of_another_writer_during_a_group_reaches_subscribers_in_order(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer (another store on the same database: another process) commits
    # before the group's transaction and while its block is open after the commit:
    # every event reaches the subscriber in id order, without the reader thread's
    # fallback re-check (FALLBACK_SECONDS is far above the test's timeout).
    monkeypatch.setattr(hub_module, "FALLBACK_SECONDS", 600.0)
    register(service, "alice", "bob")
    url = service.store.url.render_as_string(hide_password=False)
    other = Service(Store(url, clock=service.store.clock))

    def outside(body: str) -> None:
        worker = threading.Thread(target=lambda: other.send("bob", "alice", body))
        worker.start()
        worker.join(HUNG)

    async def main(hub: Hub) -> tuple[list[int], list[int]]:
        groups = SendGroups(service, hub, Metrics())
        remember = hub.remember
        written = threading.Event()

        def remember_then_write(messages: Iterable[Message]) -> None:
            remember(messages)
            if written.is_set():
                return  # publish() remembers too, after the block
            written.set()
            outside("after the group's commit")
            # Let the reader thread take that wake-up while the block is still open.
            deadline = time.monotonic() + HUNG
            while not hub._deferred and time.monotonic() < deadline:
                time.sleep(0.001)

        with hub.subscribe("default", None, "sse") as sub:
            await _listening(hub, service, sub)
            groups.on_group = lambda size: outside("before the group's transaction")
            await off_loop(lambda: groups._store([_Waiter(GroupSend("alice", "bob", "a"))]))
            groups.on_group = None
            monkeypatch.setattr(hub, "remember", remember_then_write)
            await off_loop(lambda: groups._store([_Waiter(GroupSend("alice", "bob", "b"))]))
            items = await next_items(sub, 4)
            head = await off_loop(service.log_head)
            return [i.id for i in items], list(range(head - 3, head + 1))

    try:
        got, expected = run(main, service)
    finally:
        other.store.close()
    assert got == expected
