"""Workspace counts: agents by effective status, messages, tasks, unread deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaybus.service import Service, WorkspaceStats

if TYPE_CHECKING:
    from tests.conftest import Clock


def test_an_empty_workspace_counts_zeros_for_every_status(service: Service) -> None:
    stats = service.stats()

    assert stats.messages == stats.latest_message_id == stats.unread == 0
    assert set(stats.agents) == {"online", "busy", "idle", "offline"}
    assert set(stats.agents.values()) == {0}
    assert stats.tasks["open"] == stats.tasks["done"] == 0


def test_stats_count_agents_messages_tasks_and_unread_mail_of_one_workspace(
    service: Service, clock: Clock
) -> None:
    service.register("alice", tags=["team"])
    service.register("bob", tags=["team"])
    service.register("carol", tags=["team"])
    service.update_agent("bob", status="busy")
    hello = service.send("alice", "tag:team", "hello")  # bob and carol
    last = service.send("bob", "alice", "review this", claimable=True)
    assert last.task_id is not None
    service.claim(last.task_id, "alice")
    service.mark_read("carol", ids=[hello.id])
    service.register("yan", workspace="elsewhere")
    service.register("zed", workspace="elsewhere")
    service.send("zed", "yan", "not counted", workspace="elsewhere")
    clock.advance(service.settings.stale_ttl + 1)
    service.heartbeat("alice")  # bob and carol went stale: offline

    stats = service.stats()

    assert stats == WorkspaceStats(
        agents={"online": 1, "busy": 0, "idle": 0, "offline": 2},
        messages=2,
        latest_message_id=last.id,
        tasks={
            "open": 0,
            "claimed": 1,
            "in_progress": 0,
            "blocked": 0,
            "done": 0,
            "failed": 0,
            "canceled": 0,
        },
        unread=2,  # bob's "hello" and alice's task message
    )
    assert service.latest_message_id() == last.id
    assert service.stats(workspace="elsewhere").latest_message_id > last.id
    assert service.latest_message_id(workspace="nowhere") == 0
