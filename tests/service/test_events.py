"""The event log: monotonic ids, resuming from a cursor, filtering by kind or family."""

from __future__ import annotations

import pytest

from relaybus.errors import InvalidInput
from relaybus.service import Service


@pytest.fixture
def busy(service: Service) -> Service:
    """A log with agent, message and task events."""
    service.register("alice")
    service.register("bob", capabilities=["review"])
    sent = service.send("alice", "bob", "hi")
    service.inbox("bob", mark_read=True)
    task = service.send("alice", "cap:review", "review", claimable=True, reply_to=sent.id)
    assert task.task_id is not None
    service.claim(task.task_id, "bob")
    service.update_task(task.task_id, "bob", status="done")
    return service


def test_event_ids_increase_with_every_change(busy: Service) -> None:
    events = busy.events()
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [e.kind for e in events] == [
        "agent.registered",
        "agent.registered",
        "message.sent",
        "message.read",
        "task.created",
        "message.sent",
        "task.claimed",
        "task.updated",
    ]
    assert busy.last_event_id() == ids[-1]


def test_the_since_cursor_resumes_after_the_last_seen_id(busy: Service) -> None:
    everything = busy.events()
    cursor = everything[3].id
    assert busy.events(since=cursor) == everything[4:]
    assert busy.events(since=busy.last_event_id()) == []
    busy.heartbeat("alice", status="busy")
    (new,) = busy.events(since=everything[-1].id)
    assert new.kind == "agent.updated"
    assert new.id > everything[-1].id


def test_limit_pages_through_the_log(busy: Service) -> None:
    everything = busy.events()
    first = busy.events(limit=3)
    second = busy.events(since=first[-1].id, limit=3)
    assert first + second == everything[:6]
    with pytest.raises(InvalidInput):
        busy.events(limit=1001)


def test_kinds_filter_by_exact_kind_and_by_family(busy: Service) -> None:
    assert [e.kind for e in busy.events(kinds=["message.sent"])] == ["message.sent"] * 2
    assert [e.kind for e in busy.events(kinds=["task."])] == [
        "task.created",
        "task.claimed",
        "task.updated",
    ]
    assert [e.kind for e in busy.events(kinds=["agent.", "message.read"])] == [
        "agent.registered",
        "agent.registered",
        "message.read",
    ]
    assert busy.events(kinds=["task"]) == []  # a family needs its dot


@pytest.mark.parametrize("kind", ["task.\x00", "\ud800"])
def test_a_kind_no_database_could_compare_is_refused_in_words(busy: Service, kind: str) -> None:
    with pytest.raises(InvalidInput, match="kind"):
        busy.events(kinds=["message.sent", kind])


def test_events_carry_the_acting_agent_and_their_data(busy: Service) -> None:
    claimed = busy.events(kinds=["task.claimed"])[0]
    assert claimed.agent_id == "bob"
    assert claimed.workspace == "default"
    assert set(claimed.data) == {"task_id", "lease_expires_at"}


def test_events_stay_in_their_workspace(busy: Service) -> None:
    assert busy.events(workspace="other") == []
    assert busy.last_event_id(workspace="other") == 0
    busy.register("zed", workspace="other")
    (event,) = busy.events(workspace="other")
    assert event.workspace == "other"


def test_an_empty_log_has_cursor_zero(service: Service) -> None:
    assert service.last_event_id() == 0
    assert service.events() == []


def test_a_kind_family_filter_treats_underscores_literally(service: Service) -> None:
    service.register("alice")
    # "agent_" must not match "agent." as a LIKE wildcard would.
    assert service.events(kinds=["agent_"]) == []
    assert service.events(kinds=["agent."]) != []
