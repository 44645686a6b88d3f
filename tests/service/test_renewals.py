"""Renewing every lease an agent holds, each by the length it was claimed with."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from relaybus.errors import Conflict, NotFound
from relaybus.models import LeaseRenewal, TaskStatus
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Clock

LEASE = 600.0  # Settings.lease_seconds default


def offer(service: Service, *, n: int = 1) -> list[int]:
    """``n`` claimable tasks from ``author`` to ``worker`` (both registered once)."""
    for agent in ("author", "worker", "other"):
        if not any(a.id == agent for a in service.list_agents()):
            service.register(agent, capabilities=["work"])
    ids = []
    for i in range(n):
        sent = service.send("author", "cap:work", f"job {i}", claimable=True)
        assert sent.task_id is not None
        ids.append(sent.task_id)
    return ids


def expiry(service: Service, task_id: int) -> float:
    found = service.get_task(task_id, sweep=False).lease_expires_at
    assert found is not None
    return found.timestamp()


def test_nothing_held_renews_nothing(service: Service) -> None:
    service.register("idle")
    before = service.events()
    assert service.renew_held("idle") == LeaseRenewal(renewed=[], next_in=None)
    assert service.events() == before  # a read only: no event, no write


def test_each_lease_is_renewed_by_its_own_length(service: Service, clock: Clock) -> None:
    short, default, long = offer(service, n=3)
    service.claim(short, "worker", lease=2.0)
    service.claim(default, "worker")
    service.claim(long, "worker", lease=3600.0)
    clock.advance(1.5)
    renewal = service.renew_held("worker")
    assert renewal.renewed == [short, default, long]
    assert renewal.next_in == pytest.approx(2.0 / 3)
    assert expiry(service, short) == pytest.approx(clock.now + 2.0)
    assert expiry(service, default) == pytest.approx(clock.now + LEASE)
    assert expiry(service, long) == pytest.approx(clock.now + 3600.0)
    renewed = service.events(kinds=["task.renewed"])
    assert sorted(e.data["task_id"] for e in renewed) == [short, default, long]
    assert all(e.agent_id == "worker" for e in renewed)


def test_renewals_keep_a_short_lease_alive_past_its_length(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    service.claim(task_id, "worker", lease=2.0)
    for _ in range(10):
        clock.advance(0.6)
        assert service.renew_held("worker").renewed == [task_id]
    service.sweep()
    task = service.get_task(task_id)
    assert (task.status, task.assignee) == (TaskStatus.CLAIMED, "worker")


def test_a_lapsed_lease_is_not_renewed_and_returns(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    service.claim(task_id, "worker", lease=2.0)
    clock.advance(2.5)
    assert service.renew_held("worker") == LeaseRenewal()
    assert service.claim(task_id, "other").assignee == "other"


def test_only_the_agents_own_leases_are_renewed(service: Service, clock: Clock) -> None:
    mine, theirs = offer(service, n=2)
    service.claim(mine, "worker", lease=10.0)
    service.claim(theirs, "other", lease=10.0)
    clock.advance(5.0)
    assert service.renew_held("worker").renewed == [mine]
    assert expiry(service, theirs) == pytest.approx(clock.now + 5.0)


def test_a_stale_epoch_is_refused_and_renews_nothing(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    old = service.register("worker", instance_id="one").epoch
    service.claim(task_id, "worker", epoch=old, lease=10.0)
    new = service.register("worker", instance_id="two").epoch
    assert new != old
    before = expiry(service, task_id)
    clock.advance(1.0)
    with pytest.raises(Conflict, match="stale epoch"):
        service.renew_held("worker", epoch=old)
    assert expiry(service, task_id) == before
    # The new instance renews the claims it made, not the fenced-off one's.
    assert service.renew_held("worker", epoch=new) == LeaseRenewal()
    assert expiry(service, task_id) == before


def test_an_unknown_agent_is_not_found(service: Service) -> None:
    with pytest.raises(NotFound):
        service.renew_held("nobody")


def test_a_renewal_without_a_length_keeps_the_claimed_one(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    service.claim(task_id, "worker", lease=2.0)
    clock.advance(1.0)
    assert expiry(service, service.renew(task_id, "worker").id) == pytest.approx(clock.now + 2.0)
    service.renew(task_id, "worker", lease=30.0)  # a length given is kept from then on
    clock.advance(1.0)
    service.renew(task_id, "worker")
    assert expiry(service, task_id) == pytest.approx(clock.now + 30.0)
    assert service.renew_held("worker").next_in == pytest.approx(10.0)


def test_the_stored_length_survives_update_task(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    service.claim(task_id, "worker", lease=2.0)
    clock.advance(1.0)
    service.update_task(task_id, "worker", progress=40, note="halfway")
    assert expiry(service, task_id) == pytest.approx(clock.now + 2.0)  # not the default
    clock.advance(1.0)
    assert service.renew_held("worker").renewed == [task_id]
    assert expiry(service, task_id) == pytest.approx(clock.now + 2.0)


def test_a_released_task_forgets_the_length(service: Service, clock: Clock) -> None:
    (task_id,) = offer(service)
    service.claim(task_id, "worker", lease=2.0)
    service.release(task_id, "worker")
    service.claim(task_id, "other")
    assert expiry(service, task_id) == pytest.approx(clock.now + LEASE)
