"""Waiting for mail and events: immediate answers, timeouts, and wake-ups by a writer.

The ``parking`` fixture pushes the fallback poll far beyond every timeout here, signals
once the waiter has checked, found nothing and gone to sleep on its listener, and counts
the sleeps a notification ended. A wake-up test sends only after the waiter sleeps and
then requires the listener to report a wake-up (a datagram on SQLite, NOTIFY on
PostgreSQL): a wait that merely ran into its timeout and re-checked does not pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relaybus.models import Event, Message
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Background, Parking

    Run = type[Background[Any]]

WAKE_TIMEOUT = 30.0  # far above any real wake-up; reached only if the wake-up is broken
SHORT = 0.2  # a timeout the test expects to run out


def ids(found: list[Message] | list[Event]) -> list[int]:
    return [m.id for m in found]


def test_wait_returns_at_once_when_there_is_unread_mail(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    first = service.send("alice", "bob", "one")
    second = service.send("alice", "bob", "two")
    # Oldest first, and nothing is marked read unless asked.
    assert ids(service.wait("bob", WAKE_TIMEOUT)) == [first.id, second.id]
    assert service.unread_count("bob") == 2


def test_wait_only_counts_unread_mail_above_the_cursor(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    old = service.send("alice", "bob", "old")
    new = service.send("alice", "bob", "new")
    assert ids(service.wait("bob", WAKE_TIMEOUT, since=old.id)) == [new.id]
    assert service.wait("bob", SHORT, since=new.id) == []
    service.mark_read("bob", ids=[new.id])
    assert ids(service.wait("bob", WAKE_TIMEOUT)) == [old.id]


def test_wait_returns_nothing_on_timeout(service: Service) -> None:
    service.register("bob")
    assert service.wait("bob", SHORT) == []
    assert service.wait("bob", 0) == []


def test_wait_can_mark_what_it_returns_read(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    sent = service.send("alice", "bob", "hi")
    assert ids(service.wait("bob", WAKE_TIMEOUT, mark_read=True)) == [sent.id]
    assert service.unread_count("bob") == 0


def test_wait_is_woken_by_a_send_from_another_thread(
    service: Service, parking: Parking, background: Run
) -> None:
    service.register("alice")
    service.register("bob")
    waiter = background(lambda: service.wait("bob", WAKE_TIMEOUT))
    assert parking.asleep.wait(WAKE_TIMEOUT), "the waiter never went to sleep"
    sent = service.send("alice", "bob", "wake up")
    assert ids(waiter.outcome()) == [sent.id]
    assert parking.wakeups >= 1


def test_a_wake_up_for_someone_elses_mail_does_not_end_the_wait(
    service: Service, parking: Parking, background: Run
) -> None:
    service.register("alice")
    service.register("bob")
    service.register("carol")
    waiter = background(lambda: service.wait("bob", WAKE_TIMEOUT))
    assert parking.asleep.wait(WAKE_TIMEOUT)
    parking.asleep.clear()
    service.send("alice", "carol", "not for bob")
    # Woken, it re-checks, finds nothing for bob and sleeps again.
    assert parking.asleep.wait(WAKE_TIMEOUT), "the waiter returned instead of waiting on"
    assert waiter.is_alive()
    sent = service.send("alice", "bob", "for bob")
    assert ids(waiter.outcome()) == [sent.id]
    assert parking.wakeups >= 2


def test_wait_events_returns_at_once_above_the_cursor(service: Service) -> None:
    service.register("alice")
    found = service.wait_events(WAKE_TIMEOUT, since=0)
    assert [e.kind for e in found] == ["agent.registered"]
    assert service.wait_events(SHORT, since=found[-1].id) == []


def test_wait_events_is_woken_by_a_write(
    service: Service, parking: Parking, background: Run
) -> None:
    service.register("alice")
    cursor = service.last_event_id()
    waiter = background(lambda: service.wait_events(WAKE_TIMEOUT, since=cursor, kinds=["task."]))
    assert parking.asleep.wait(WAKE_TIMEOUT)
    parking.asleep.clear()
    service.register("bob", capabilities=["review"])  # not a task event: waits on
    assert parking.asleep.wait(WAKE_TIMEOUT)
    service.send("alice", "bob", "job", claimable=True)
    assert [e.kind for e in waiter.outcome()] == ["task.created"]
    assert parking.wakeups >= 2
