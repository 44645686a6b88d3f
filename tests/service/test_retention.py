"""Retention: prune old messages, deliveries and events, and agents long offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from relaybus.errors import NotFound
from relaybus.models import PruneReport
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Clock

DAY = 86400.0


def test_prune_deletes_old_messages_deliveries_and_events_and_keeps_recent_ones(
    service: Service, clock: Clock
) -> None:
    service.register("alice", tags=["team"])
    service.register("bob", tags=["team"])
    service.register("carol", tags=["team"])
    old = service.send("alice", "tag:team", "old news")  # two deliveries
    old_events = service.last_event_id()
    clock.advance(20 * DAY)
    for name in ("alice", "bob", "carol"):
        service.heartbeat(name)
    recent = service.send("alice", "bob", "fresh")
    clock.advance(11 * DAY)  # old is 31 days old, recent 11
    for name in ("alice", "bob", "carol"):
        service.heartbeat(name)

    report = service.prune()  # default: 30 days

    assert report == PruneReport(messages=1, deliveries=2, events=old_events, agents=0)
    with pytest.raises(NotFound):
        service.get_message(old.id)
    assert service.get_message(recent.id).recipients == ["bob"]
    assert [m.id for m in service.inbox("bob", unread_only=False)] == [recent.id]
    assert service.inbox("carol", unread_only=False) == []
    remaining = service.events()
    assert remaining[0].id > old_events
    assert remaining[-1].kind == "relay.pruned"
    assert remaining[-1].data == report.model_dump()


def test_prune_takes_the_number_of_days(service: Service, clock: Clock) -> None:
    service.register("alice")
    service.register("bob")
    service.send("alice", "bob", "two days old")
    clock.advance(2 * DAY)
    service.heartbeat("alice")
    service.heartbeat("bob")
    assert service.prune(message_days=3).messages == 0
    assert service.prune(message_days=1).messages == 1


def test_prune_deletes_agents_offline_for_longer_than_m_days(
    service: Service, clock: Clock
) -> None:
    service.register("gone")
    service.register("recently-gone")
    service.register("alive")
    service.register("sender")
    service.send("sender", "gone", "unread forever")
    read = service.send("sender", "gone", "read once")
    service.mark_read("gone", ids=[read.id])
    clock.advance(8 * DAY)  # past the 7-day agent retention; everyone is stale now
    service.heartbeat("alive")
    service.heartbeat("sender")
    service.update_agent("recently-gone", status="offline")  # acting makes it seen now

    report = service.prune()

    assert report.agents == 1
    assert report.deliveries == 2  # the deliveries to the deleted agent, unread and read
    assert report.messages == 0  # the message itself is recent
    assert [a.id for a in service.list_agents()] == ["alive", "recently-gone", "sender"]


def test_prune_keeps_tasks(service: Service, clock: Clock) -> None:
    service.register("alice")
    service.register("bob")
    task_id = service.send("alice", "bob", "a job", claimable=True).task_id
    assert task_id is not None
    clock.advance(40 * DAY)
    service.prune()
    assert service.get_task(task_id).title == "a job"
    assert [e.kind for e in service.task_history(task_id)] == ["created"]


def test_prune_of_a_fresh_relay_deletes_nothing(service: Service) -> None:
    service.register("alice")
    assert service.prune() == PruneReport(messages=0, deliveries=0, events=0, agents=0)
    assert service.list_agents()[0].id == "alice"
