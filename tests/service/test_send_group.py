"""``Service.send_group``: independent sends in one transaction store exactly what the same
sends store one by one (rows, ids, events, errors), on both dialects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from relaybus.errors import RelayError
from relaybus.models import Event, Message
from relaybus.service import Service
from relaybus.service.messages import GroupSend
from relaybus.store import Store
from tests.conftest import Clock, open_test_store, snapshot_rows

KEY = "5b0f3d4e-group-key"


def setup(service: Service) -> None:
    for agent in ("alice", "bob", "carol"):
        service.register(agent)
    service.register("dave", tags=["ops"])
    service.send("alice", "bob", "private to bob")  # message 1: carol may not see it


SENDS = [
    GroupSend("alice", "bob", "hello"),
    GroupSend("carol", "nobody", "to a ghost"),  # NotFound
    GroupSend("bob", "tag:ops", "to ops", subject="deploy", claimable=True),
    GroupSend("dave", "bob", "stale", epoch=7),  # Conflict
    GroupSend("carol", None, "re", reply_to=1),  # NotFound: a message carol may not see
    GroupSend("bob", None, "re", reply_to=1),  # a reply to the parent's sender
    GroupSend("alice", "bob", "keyed", idempotency_key=KEY),
    GroupSend("alice", "bob", "keyed", idempotency_key=KEY),  # a retry: the same message
    GroupSend("alice", "bob", "other", idempotency_key=KEY),  # Conflict: the key reused
    GroupSend("alice", "bob", "bad key", idempotency_key=" x"),  # InvalidInput
    GroupSend("carol", "broadcast", "to all", meta={"n": 1}, priority="high"),
    GroupSend("carol", "bob", "\x00"),  # InvalidInput: NUL
]


def one_by_one(service: Service, sends: Sequence[GroupSend] = SENDS) -> list[Message | RelayError]:
    """What :meth:`Service.send` does with ``sends`` one after another."""
    outcomes: list[Message | RelayError] = []
    for send in sends:
        fields = send._asdict()
        try:
            outcomes.append(service.send(fields.pop("sender"), fields.pop("to"), **fields))
        except RelayError as exc:
            outcomes.append(exc)
    return outcomes


def shown(outcomes: list[Message | RelayError]) -> list[object]:
    return [
        o.model_dump() if isinstance(o, Message) else (type(o).__name__, o.message)
        for o in outcomes
    ]


def test_a_group_stores_what_the_same_sends_store_one_by_one(
    store: Store, tmp_path: Path, clock: Clock
) -> None:
    grouped = Service(store)
    setup(grouped)
    with open_test_store(store.dialect, tmp_path / "alone", clock) as other:
        alone = Service(other)
        setup(alone)
        expected = one_by_one(alone)
        got = grouped.send_group(SENDS)
        assert shown(got) == shown(expected)
        assert snapshot_rows(store) == snapshot_rows(other)
    kinds = [type(o).__name__ for o in got]
    assert kinds == [
        "Message",
        "NotFound",
        "Message",
        "Conflict",
        "NotFound",
        "Message",
        "Message",
        "Message",
        "Conflict",
        "InvalidInput",
        "Message",
        "InvalidInput",
    ]
    ids = [o.id for o in got if isinstance(o, Message)]
    assert ids[3] == ids[4]  # the retry got the first message
    assert ids[:4] + ids[5:] == sorted(set(ids))


def test_a_group_of_one_is_a_send(service: Service) -> None:
    setup(service)
    [message] = service.send_group([GroupSend("alice", "bob", "alone")])
    assert isinstance(message, Message)
    assert service.get_message(message.id).body == "alone"
    [refused] = service.send_group([GroupSend("alice", "ghost", "alone")])
    assert isinstance(refused, RelayError) and refused.status == 404


#: One agent sending several times in a group: each send is fenced on its own, and a
#: refused first send leaves the agent as it was (offline here) for the next one.
REPEATS = [
    GroupSend("alice", "nobody", "refused after alice's touch"),  # NotFound
    GroupSend("alice", "bob", "one", epoch=1),
    GroupSend("alice", "bob", "stale", epoch=7),  # Conflict
    GroupSend("alice", "bob", "two"),
    GroupSend("alice", "bob", "three", epoch=1),
    GroupSend("bob", "alice", "back", epoch=2),  # Conflict
    GroupSend("bob", "alice", "back", epoch=1),
    GroupSend("alice", "bob", "bad epoch", epoch=-1),  # InvalidInput
]


def repeats_setup(service: Service) -> None:
    for agent in ("alice", "bob"):
        service.register(agent)
    service.heartbeat("alice", status="offline")


def test_an_agent_sending_several_times_in_a_group_is_fenced_for_each_send(
    store: Store, tmp_path: Path, clock: Clock
) -> None:
    grouped = Service(store)
    repeats_setup(grouped)
    with open_test_store(store.dialect, tmp_path / "alone", clock) as other:
        alone = Service(other)
        repeats_setup(alone)
        expected = one_by_one(alone, REPEATS)
        got = grouped.send_group(REPEATS)
        assert shown(got) == shown(expected)
        assert snapshot_rows(store) == snapshot_rows(other)
    kinds = [type(o).__name__ for o in got]
    assert kinds == [
        "NotFound",
        "Message",
        "Conflict",
        "Message",
        "Message",
        "Conflict",
        "Message",
        "InvalidInput",
    ]
    # Back online once, by its first stored send.
    online = grouped.events(kinds=["agent.online"])
    assert [(e.agent_id, e.id) for e in online] == [("alice", online[0].id)]
    assert grouped.get_agent("alice").status == "online"


def test_an_agent_sending_several_times_in_a_group_is_marked_seen_at_its_first_send(
    service: Service, clock: Clock
) -> None:
    for agent in ("alice", "bob"):
        service.register(agent)
    ticking = service.store.clock

    def tick() -> float:
        clock.advance(1.0)
        return ticking()

    service.store.clock = tick
    got = service.send_group([GroupSend("alice", "bob", f"m{n}") for n in range(3)])
    first = got[0]
    assert isinstance(first, Message)
    assert [m.created_at for m in got if isinstance(m, Message)] == sorted(
        {m.created_at for m in got if isinstance(m, Message)}
    )
    assert service.get_agent("alice").last_seen_at == first.created_at


def test_a_group_logs_the_events_it_committed_as_the_log_reads_them(service: Service) -> None:
    setup(service)
    since = service.log_head()
    log: list[Event] = []
    got = service.send_group(SENDS, log=log)
    assert any(isinstance(o, RelayError) for o in got)  # refused sends logged nothing
    assert log == service.log_tail(since)
    assert [e.kind for e in log].count("message.sent") == len(
        {o.id for o in got if isinstance(o, Message)}
    )
    alone: list[Event] = []
    since = service.log_head()
    service.send_group([GroupSend("carol", "bob", "alone")], log=alone)
    assert alone == service.log_tail(since) and len(alone) == 1
    failed: list[Event] = []
    service.send_group([GroupSend("carol", "ghost", "alone")], log=failed)
    assert failed == []
