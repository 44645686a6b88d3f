"""Delivery receipts: queued → delivered (with the path) → read, waiting for a
state, and stuck deliveries of online agents."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from relaybus.errors import Conflict, InvalidInput, NotFound
from relaybus.models import AgentStatus, DeliveryState, Via
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Clock, Snapshot

HUNG = 30.0


@pytest.fixture
def sent(service: Service) -> int:
    """A message from alice to bob and carol; its id."""
    for name in ("alice", "bob", "carol"):
        service.register(name)
    return service.send("alice", "broadcast", "deploy at 5").id


def states(service: Service, message_id: int) -> dict[str, str]:
    return {d.agent_id: d.state.value for d in service.deliveries(message_id)}


def test_a_new_message_is_queued_for_every_recipient(service: Service, sent: int) -> None:
    receipts = service.deliveries(sent)
    assert [(d.agent_id, d.state) for d in receipts] == [
        ("bob", DeliveryState.QUEUED),
        ("carol", DeliveryState.QUEUED),
    ]
    assert all(d.delivered_at is None and d.via is None and d.read_at is None for d in receipts)
    assert receipts[0].queued_at == service.get_message(sent).created_at


def test_mark_delivered_records_the_time_and_path_once(
    service: Service, sent: int, clock: Clock
) -> None:
    assert service.mark_delivered("bob", [sent], via="pty") == 1
    first = clock.now
    clock.advance(5)
    assert service.mark_delivered("bob", [sent], via=Via.TMUX) == 0  # already delivered
    bob = next(d for d in service.deliveries(sent) if d.agent_id == "bob")
    assert (bob.state, bob.via) == (DeliveryState.DELIVERED, Via.PTY)
    assert bob.delivered_at is not None and bob.delivered_at.timestamp() == first
    assert states(service, sent) == {"bob": "delivered", "carol": "queued"}
    (event,) = service.events(kinds=["message.delivered"])
    assert (event.agent_id, event.data) == ("bob", {"message_ids": [sent], "via": "pty"})


def test_reading_a_queued_message_also_delivers_it_by_the_reading_path(
    service: Service, sent: int
) -> None:
    service.mark_read("carol", ids=[sent], via=Via.HOOK)
    carol = next(d for d in service.deliveries(sent) if d.agent_id == "carol")
    assert (carol.state, carol.via) == (DeliveryState.READ, Via.HOOK)
    assert carol.delivered_at == carol.read_at
    # One event for the read, which implies the delivery.
    assert service.events(kinds=["message.delivered"]) == []
    (event,) = service.events(kinds=["message.read"])
    assert event.data == {"message_ids": [sent], "via": "hook"}


def test_reading_a_delivered_message_keeps_its_delivery(
    service: Service, sent: int, clock: Clock
) -> None:
    service.mark_delivered("bob", [sent], via=Via.PTY)
    delivered = clock.now
    clock.advance(3)
    got = service.inbox("bob", mark_read=True)
    assert got[0].delivered_at is not None and got[0].delivered_at.timestamp() == delivered
    bob = next(d for d in service.deliveries(sent) if d.agent_id == "bob")
    assert bob.state is DeliveryState.READ and bob.via is Via.PTY
    assert bob.read_at is not None and bob.read_at.timestamp() == delivered + 3


def test_a_look_delivers_only_when_it_names_a_path(service: Service, sent: int) -> None:
    assert service.inbox("bob")[0].delivered_at is None  # someone looking, e.g. a dashboard
    assert states(service, sent)["bob"] == "queued"
    looked = service.inbox("bob", via=Via.MCP)
    assert looked[0].delivered_at is not None  # the state this read left
    assert looked[0].read_at is None
    assert states(service, sent) == {"bob": "delivered", "carol": "queued"}
    assert service.unread_count("bob") == 1


def test_a_look_that_hands_over_nothing_new_writes_nothing(
    service: Service, sent: int, snapshot: Callable[[], Snapshot]
) -> None:
    service.mark_delivered("bob", [sent], via=Via.PTY)
    before = snapshot()
    service.inbox("bob", via=Via.MCP)
    assert snapshot() == before


def test_a_wait_with_a_path_delivers_what_it_returns(service: Service, sent: int) -> None:
    got = service.wait("carol", 0, via=Via.STREAM)
    assert [m.id for m in got] == [sent]
    carol = next(d for d in service.deliveries(sent) if d.agent_id == "carol")
    assert (carol.state, carol.via) == (DeliveryState.DELIVERED, Via.STREAM)


def test_bad_receipts_change_nothing(
    service: Service, sent: int, snapshot: Callable[[], Snapshot]
) -> None:
    before = snapshot()
    with pytest.raises(InvalidInput, match="unknown delivery path 'carrier pigeon'"):
        service.mark_delivered("bob", [sent], via="carrier pigeon")
    with pytest.raises(InvalidInput, match="unknown delivery path"):
        service.inbox("bob", via="fax")
    with pytest.raises(NotFound, match="no agent 'zed'"):
        service.mark_delivered("zed", [sent], via=Via.PTY)
    with pytest.raises(Conflict, match="stale epoch"):
        service.mark_delivered("bob", [sent], via=Via.PTY, epoch=7)
    with pytest.raises(InvalidInput, match="at most 1000"):
        service.mark_delivered("bob", list(range(1, 1002)), via=Via.PTY)
    with pytest.raises(NotFound, match="no message 999"):
        service.deliveries(999)
    with pytest.raises(InvalidInput, match="unknown delivery state 'seen'"):
        service.wait_deliveries(sent, "seen", 0)
    assert snapshot() == before


def test_a_receipt_for_a_message_of_someone_else_changes_nothing(
    service: Service, sent: int
) -> None:
    other = service.send("bob", "carol", "not for alice").id
    assert service.mark_delivered("alice", [other], via=Via.PTY) == 0
    assert states(service, other) == {"carol": "queued"}


def test_wait_deliveries_returns_once_every_recipient_reached_the_state(
    service: Service, sent: int
) -> None:
    service.mark_read("bob", ids=[sent])
    assert {d.state for d in service.wait_deliveries(sent, "delivered", 0)} == {
        DeliveryState.READ,
        DeliveryState.QUEUED,
    }  # timed out: carol is still queued
    waiting: list[list[str]] = []

    def waiter() -> None:
        found = service.wait_deliveries(sent, DeliveryState.DELIVERED, HUNG)
        waiting.append([d.state.value for d in found])

    thread = threading.Thread(target=waiter)
    thread.start()
    service.mark_delivered("carol", [sent], via=Via.TMUX)
    thread.join(HUNG)
    assert not thread.is_alive()
    assert waiting == [["read", "delivered"]]  # read counts as delivered


def test_deliveries_queued_past_the_threshold_are_stuck_while_the_agent_is_online(
    service: Service, sent: int, clock: Clock
) -> None:
    assert service.stuck() == {}
    assert service.get_agent("bob").stuck == 0
    clock.advance(service.settings.stuck_after + 1)
    service.heartbeat("bob")
    service.heartbeat("carol")
    assert service.stuck() == {"bob": 1, "carol": 1}
    assert {a.id: a.stuck for a in service.list_agents()} == {"alice": 0, "bob": 1, "carol": 1}
    service.mark_delivered("bob", [sent], via=Via.PTY)
    service.heartbeat("carol", status=AgentStatus.OFFLINE)
    assert service.stuck() == {}  # bob has it; carol is away, so it waits, not stuck
    assert service.get_agent("carol").stuck == 0


def test_backlog_counts_unread_and_stuck_mail_per_workspace_with_unread_mail(
    service: Service, sent: int, clock: Clock
) -> None:
    service.register("dave", workspace="ops")
    service.register("erin", workspace="ops")
    service.register("frank", workspace="quiet")
    service.send("dave", "erin", "disk full", workspace="ops")
    assert service.backlog() == {"default": (2, 0), "ops": (1, 0)}
    clock.advance(service.settings.stuck_after + 1)
    service.heartbeat("bob")
    service.heartbeat("carol", status=AgentStatus.OFFLINE)
    service.heartbeat("erin", workspace="ops")
    backlog = service.backlog()
    assert backlog == {"default": (2, 1), "ops": (1, 1)}  # carol is away: hers waits
    assert (backlog["default"].unread, backlog["default"].stuck) == (2, 1)
    service.mark_read("bob", ids=[sent])
    service.mark_read("carol", ids=[sent])
    assert service.backlog() == {"ops": (1, 1)}  # no unread mail: left out
