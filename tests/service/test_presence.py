"""Presence: stale heartbeats and dead pids read as offline; a sweep persists it."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import sqlalchemy as sa

from relaybus.models import AgentStatus
from relaybus.service import Service
from relaybus.store.schema import agents

if TYPE_CHECKING:
    from tests.conftest import Clock

STALE_TTL = 90.0  # Settings.stale_ttl default, seconds


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        child.wait()
    return child.pid


def test_an_agent_with_a_fresh_heartbeat_is_online(service: Service, clock: Clock) -> None:
    service.register("alice")
    clock.advance(STALE_TTL)  # exactly the TTL is still fresh
    assert service.get_agent("alice").status is AgentStatus.ONLINE


def test_an_agent_whose_heartbeat_is_older_than_the_ttl_is_offline(
    service: Service, clock: Clock
) -> None:
    service.register("alice")
    service.update_agent("alice", status="busy")
    clock.advance(STALE_TTL + 1)
    assert service.get_agent("alice").status is AgentStatus.OFFLINE
    assert [a.id for a in service.list_agents(online_only=True)] == []


def test_a_heartbeat_keeps_an_agent_online(service: Service, clock: Clock) -> None:
    service.register("alice")
    for _ in range(3):
        clock.advance(STALE_TTL - 1)
        service.heartbeat("alice")
    assert service.get_agent("alice").status is AgentStatus.ONLINE


def test_an_agent_on_this_host_whose_pid_is_gone_is_offline_at_once(service: Service) -> None:
    service.register("alice", pid=dead_pid())
    assert service.get_agent("alice").status is AgentStatus.OFFLINE


def test_an_agent_on_this_host_whose_pid_lives_is_online(service: Service) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as child:
        assert child.stdin is not None
        service.register("alice", pid=child.pid)
        assert service.get_agent("alice").status is AgentStatus.ONLINE
        child.stdin.close()
        child.wait()
    assert service.get_agent("alice").status is AgentStatus.OFFLINE


def test_a_dead_pid_on_another_host_says_nothing(service: Service) -> None:
    service.register("alice", pid=dead_pid(), host="some-other-machine")
    assert service.get_agent("alice").status is AgentStatus.ONLINE


def test_sweep_persists_offline_and_appends_agent_offline(service: Service, clock: Clock) -> None:
    service.register("stale")
    service.register("dead", pid=dead_pid())
    clock.advance(STALE_TTL / 2)
    service.register("fresh")
    clock.advance(STALE_TTL / 2 + 1)

    assert service.sweep() == {"agents_offline": 2, "tasks_released": 0}

    events = service.events(kinds=["agent.offline"])
    assert sorted(e.agent_id or "" for e in events) == ["dead", "stale"]
    assert all(e.data["reason"] == "stale" for e in events)
    # Persisted: the stored status is offline now, not only derived.
    with service.store.read() as conn:
        stored = {r.id: r.status for r in conn.execute(sa.select(agents.c.id, agents.c.status))}
    assert stored == {"stale": "offline", "dead": "offline", "fresh": "online"}
    # Idempotent: a second sweep finds nothing more to do.
    assert service.sweep() == {"agents_offline": 0, "tasks_released": 0}
    assert len(service.events(kinds=["agent.offline"])) == 2


def test_a_swept_agent_that_heartbeats_is_online_again(service: Service, clock: Clock) -> None:
    service.register("alice")
    clock.advance(STALE_TTL + 1)
    service.sweep()
    assert service.heartbeat("alice").status is AgentStatus.ONLINE
