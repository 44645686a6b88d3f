"""Tasks: creation by claimable messages, claims as leases, fencing, status and history."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from relaybus.errors import Conflict, Forbidden, NotFound
from relaybus.models import TaskStatus
from relaybus.service import Service, sweeps

if TYPE_CHECKING:
    from tests.conftest import Clock, Snapshot

LEASE = 600.0  # Settings.lease_seconds default
STALE_TTL = 90.0  # Settings.stale_ttl default


@pytest.fixture
def task_id(service: Service) -> int:
    """A claimable review task from the author to two reviewers."""
    service.register("author")
    service.register("rev1", capabilities=["review"])
    service.register("rev2", capabilities=["review"])
    sent = service.send(
        "author", "cap:review", "Please review PR 7\nDetails below", claimable=True, channel="ci"
    )
    assert sent.task_id is not None
    return sent.task_id


def kinds(service: Service, task_id: int) -> list[str]:
    return [e.kind for e in service.task_history(task_id)]


def test_a_claimable_message_creates_an_open_task(service: Service, clock: Clock) -> None:
    service.register("author")
    service.register("rev", capabilities=["review"])
    sent = service.send(
        "author", "cap:review", "body", subject="Review PR 7", channel="ci", claimable=True
    )
    assert sent.task_id is not None
    assert service.get_message(sent.id).task_id == sent.task_id
    task = service.get_task(sent.task_id)
    assert task.title == "Review PR 7"
    assert (task.body, task.target, task.channel) == ("body", "cap:review", "ci")
    assert (task.message_id, task.creator) == (sent.id, "author")
    assert (task.status, task.assignee, task.lease_expires_at) == (TaskStatus.OPEN, None, None)
    assert task.progress == 0
    assert task.created_at.timestamp() == clock.now
    assert kinds(service, sent.task_id) == ["created"]
    (event,) = service.events(kinds=["task.created"])
    assert event.data["task_id"] == sent.task_id
    assert event.data["message_id"] == sent.id
    sent_event = service.events(kinds=["message.sent"])[-1]
    assert sent_event.data["task_id"] == sent.task_id


def test_without_a_subject_the_title_is_the_first_body_line(service: Service, task_id: int) -> None:
    assert service.get_task(task_id).title == "Please review PR 7"


def test_a_plain_message_creates_no_task(service: Service) -> None:
    service.register("a")
    service.register("b")
    assert service.send("a", "b", "just chatting").task_id is None
    assert service.list_tasks() == []


def test_claiming_an_open_task_takes_a_lease(service: Service, task_id: int, clock: Clock) -> None:
    task = service.claim(task_id, "rev1")
    assert (task.status, task.assignee) == (TaskStatus.CLAIMED, "rev1")
    assert task.lease_expires_at is not None
    assert task.lease_expires_at.timestamp() == clock.now + LEASE
    assert kinds(service, task_id) == ["created", "claimed"]
    (event,) = service.events(kinds=["task.claimed"])
    assert (event.agent_id, event.data["task_id"]) == ("rev1", task_id)


def test_a_claim_may_ask_for_its_own_lease(service: Service, task_id: int, clock: Clock) -> None:
    task = service.claim(task_id, "rev1", lease=30)
    assert task.lease_expires_at is not None
    assert task.lease_expires_at.timestamp() == clock.now + 30


def test_a_second_claimer_gets_a_conflict_naming_the_holder(
    service: Service, task_id: int, snapshot: Callable[[], Snapshot], clock: Clock
) -> None:
    service.claim(task_id, "rev1")
    clock.advance(1)
    before = snapshot()
    with pytest.raises(Conflict, match="rev1") as caught:
        service.claim(task_id, "rev2")
    assert caught.value.details["holder"] == "rev1"
    assert caught.value.exit_code == 1
    assert snapshot() == before


def test_claiming_a_task_one_holds_renews_it(service: Service, task_id: int, clock: Clock) -> None:
    service.claim(task_id, "rev1")
    clock.advance(100)
    task = service.claim(task_id, "rev1")
    assert (task.status, task.assignee) == (TaskStatus.CLAIMED, "rev1")
    assert task.lease_expires_at is not None
    assert task.lease_expires_at.timestamp() == clock.now + LEASE
    assert kinds(service, task_id) == ["created", "claimed", "renewed"]


def test_renew_extends_the_lease_from_now(service: Service, task_id: int, clock: Clock) -> None:
    service.claim(task_id, "rev1", lease=60)
    clock.advance(59)
    task = service.renew(task_id, "rev1", lease=120)
    assert task.lease_expires_at is not None
    assert task.lease_expires_at.timestamp() == clock.now + 120
    clock.advance(80)  # past the first lease, within the renewed one
    with pytest.raises(Conflict):
        service.claim(task_id, "rev2")
    clock.advance(41)
    service.heartbeat("rev1")
    assert service.claim(task_id, "rev2").assignee == "rev2"
    assert [e.kind for e in service.events(kinds=["task.renewed"])] == ["task.renewed"]


def test_only_the_holder_may_renew_or_release(service: Service, task_id: int) -> None:
    with pytest.raises(Conflict, match="does not hold"):
        service.renew(task_id, "rev1")  # nobody holds it
    service.claim(task_id, "rev1")
    with pytest.raises(Conflict, match="does not hold") as caught:
        service.release(task_id, "rev2")
    assert caught.value.details["holder"] == "rev1"
    with pytest.raises(Conflict):
        service.renew(task_id, "rev2")


def test_release_reopens_the_task_for_anyone(service: Service, task_id: int) -> None:
    service.claim(task_id, "rev1")
    task = service.release(task_id, "rev1")
    assert (task.status, task.assignee, task.lease_expires_at) == (TaskStatus.OPEN, None, None)
    assert service.claim(task_id, "rev2").assignee == "rev2"
    history = service.task_history(task_id)
    assert [(h.kind, h.agent_id) for h in history] == [
        ("created", "author"),
        ("claimed", "rev1"),
        ("released", "rev1"),
        ("claimed", "rev2"),
    ]
    assert history[2].note == "released by holder"
    assert history[2].status is TaskStatus.OPEN


def test_the_operator_releases_a_stuck_lease_from_its_holder(
    service: Service, task_id: int
) -> None:
    service.claim(task_id, "rev1")
    task = service.release(task_id, None)
    assert (task.status, task.assignee, task.lease_expires_at) == (TaskStatus.OPEN, None, None)
    last = service.task_history(task_id)[-1]
    assert (last.kind, last.agent_id, last.note) == ("released", "rev1", "released by operator")
    (event,) = service.events(kinds=["task.released"])
    assert event.data["reason"] == "released by operator"
    with pytest.raises(Conflict, match="nobody holds"):
        service.release(task_id, None)
    assert kinds(service, task_id) == ["created", "claimed", "released"]


def test_tasks_page_newest_first_before_an_id(service: Service, task_id: int) -> None:
    later = service.send("author", "rev1", "another", claimable=True).task_id
    assert later is not None
    assert [t.id for t in service.list_tasks(limit=1)] == [later]
    assert [t.id for t in service.list_tasks(before=later)] == [task_id]
    assert service.list_tasks(before=task_id) == []
    assert [t.id for t in service.list_tasks(before=later, viewer="rev2")] == [task_id]


def test_an_expired_lease_lets_another_agent_claim(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1", lease=60)
    service.heartbeat("rev1")
    clock.advance(61)
    service.heartbeat("rev1")  # alive, but the lease lapsed all the same
    task = service.claim(task_id, "rev2")
    assert task.assignee == "rev2"
    history = service.task_history(task_id)
    assert [h.kind for h in history] == ["created", "claimed", "released", "claimed"]
    assert (history[2].agent_id, history[2].note) == ("rev1", "lease expired")


def test_an_expired_lease_is_released_by_a_sweep(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1", lease=60)
    clock.advance(61)
    service.heartbeat("rev1")
    assert service.sweep() == {"agents_offline": 0, "tasks_released": 1}
    task = service.get_task(task_id)
    assert (task.status, task.assignee) == (TaskStatus.OPEN, None)
    (event,) = service.events(kinds=["task.released"])
    assert (event.agent_id, event.data["reason"]) == ("rev1", "lease expired")


def test_a_holder_with_an_expired_lease_cannot_report_progress(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1", lease=60)
    clock.advance(61)
    with pytest.raises(Conflict, match="expired"):
        service.update_task(task_id, "rev1", progress=50)
    with pytest.raises(Conflict, match="expired"):
        service.renew(task_id, "rev1")


def test_a_holder_gone_offline_loses_the_task_to_another_claimer(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1")  # the lease runs much longer than the stale TTL
    clock.advance(STALE_TTL + 1)
    service.heartbeat("rev2")
    task = service.claim(task_id, "rev2")
    assert task.assignee == "rev2"
    assert service.task_history(task_id)[2].note == "holder offline"


def test_a_sweep_reopens_the_tasks_of_an_agent_gone_offline(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1")
    clock.advance(STALE_TTL + 1)
    assert service.sweep() == {"agents_offline": 3, "tasks_released": 1}
    task = service.get_task(task_id)
    assert (task.status, task.assignee) == (TaskStatus.OPEN, None)
    assert service.task_history(task_id)[-1].note == "holder offline"


def test_a_sweep_reopens_exactly_the_tasks_of_each_agent_gone_offline_after_its_offline_event(
    service: Service, clock: Clock
) -> None:
    for name in ("boss", "a", "b", "c"):
        service.register(name, capabilities=["work"])
    sent = [service.send("boss", "cap:work", f"job {i}", claimable=True) for i in range(4)]
    tasks = [m.task_id for m in sent if m.task_id is not None]
    assert len(tasks) == 4
    service.claim(tasks[0], "a")
    service.claim(tasks[1], "b")
    service.claim(tasks[2], "a")
    service.claim(tasks[3], "c")
    clock.advance(STALE_TTL / 2)
    service.heartbeat("c")  # c stays: its task stays held
    clock.advance(STALE_TTL / 2 + 1)

    assert service.sweep() == {"agents_offline": 3, "tasks_released": 3}

    held = {t: (service.get_task(t).status, service.get_task(t).assignee) for t in tasks}
    assert held == {
        tasks[0]: (TaskStatus.OPEN, None),
        tasks[1]: (TaskStatus.OPEN, None),
        tasks[2]: (TaskStatus.OPEN, None),
        tasks[3]: (TaskStatus.CLAIMED, "c"),
    }
    # Each holder's offline event comes before the reopening of its own tasks.
    log = [
        (e.kind, e.agent_id, e.data.get("task_id"))
        for e in service.events(kinds=["agent.offline", "task.released"], limit=1000)
    ]
    for agent, own in (("a", [tasks[0], tasks[2]]), ("b", [tasks[1]])):
        offline = log.index(("agent.offline", agent, None))
        reopened = [i for i, (_, who, task) in enumerate(log) if task in own]
        assert len(reopened) == len(own) and min(reopened) > offline, log
    assert service.sweep() == {"agents_offline": 0, "tasks_released": 0}


def test_a_holder_that_declares_itself_offline_loses_the_task_to_another_claimer(
    service: Service, task_id: int
) -> None:
    service.claim(task_id, "rev1")
    service.update_agent("rev1", status="offline")
    assert service.claim(task_id, "rev2").assignee == "rev2"
    assert service.task_history(task_id)[2].note == "holder offline"


def test_claim_renew_and_update_from_a_stale_epoch_are_refused(
    service: Service, task_id: int, snapshot: Callable[[], Snapshot]
) -> None:
    old = service.get_agent("rev1").epoch
    service.claim(task_id, "rev1", epoch=old)
    service.register("rev1", capabilities=["review"])  # a new instance: epoch + 1
    before = snapshot()
    with pytest.raises(Conflict, match="stale epoch"):
        service.claim(task_id, "rev1", epoch=old)
    with pytest.raises(Conflict, match="stale epoch"):
        service.renew(task_id, "rev1", epoch=old)
    with pytest.raises(Conflict, match="stale epoch"):
        service.release(task_id, "rev1", epoch=old)
    with pytest.raises(Conflict, match="stale epoch"):
        service.update_task(task_id, "rev1", epoch=old, progress=10)
    assert snapshot() == before


def test_a_new_instance_must_claim_again_before_it_can_update(
    service: Service, task_id: int
) -> None:
    service.claim(task_id, "rev1", epoch=1)
    new = service.register("rev1", capabilities=["review"]).epoch
    with pytest.raises(Conflict, match="epoch 1"):
        service.update_task(task_id, "rev1", epoch=new, progress=10)
    service.claim(task_id, "rev1", epoch=new)
    assert service.update_task(task_id, "rev1", epoch=new, progress=10).progress == 10


def test_progress_moves_a_claimed_task_to_in_progress_and_renews(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1")
    clock.advance(300)
    task = service.update_task(task_id, "rev1", progress=40, note="halfway there")
    assert (task.status, task.progress, task.progress_note) == (
        TaskStatus.IN_PROGRESS,
        40,
        "halfway there",
    )
    assert task.lease_expires_at is not None
    assert task.lease_expires_at.timestamp() == clock.now + LEASE
    last = service.task_history(task_id)[-1]
    assert (last.kind, last.status, last.progress, last.note) == (
        "in_progress",
        TaskStatus.IN_PROGRESS,
        40,
        "halfway there",
    )
    again = service.update_task(task_id, "rev1", progress=60)
    assert again.status is TaskStatus.IN_PROGRESS
    assert service.task_history(task_id)[-1].kind == "progress"


def test_the_holder_walks_the_task_to_done(service: Service, task_id: int) -> None:
    service.claim(task_id, "rev1")
    service.update_task(task_id, "rev1", status="in_progress")
    service.update_task(task_id, "rev1", status="blocked", note="waiting for CI")
    service.update_task(task_id, "rev1", status="in_progress")
    task = service.update_task(task_id, "rev1", status="done", result="LGTM")
    assert (task.status, task.result, task.progress, task.lease_expires_at) == (
        TaskStatus.DONE,
        "LGTM",
        100,
        None,
    )
    assert task.assignee == "rev1"
    assert kinds(service, task_id) == [
        "created",
        "claimed",
        "in_progress",
        "blocked",
        "in_progress",
        "done",
    ]
    updates = service.events(kinds=["task.updated"])
    assert [(e.data["previous"], e.data["status"]) for e in updates] == [
        ("claimed", "in_progress"),
        ("in_progress", "blocked"),
        ("blocked", "in_progress"),
        ("in_progress", "done"),
    ]


def test_done_is_terminal(service: Service, task_id: int) -> None:
    service.claim(task_id, "rev1")
    service.update_task(task_id, "rev1", status="done")
    calls: list[Callable[[], object]] = [
        lambda: service.update_task(task_id, "rev1", status="in_progress"),
        lambda: service.update_task(task_id, "rev1", progress=5),
        lambda: service.update_task(task_id, "author", status="canceled"),
        lambda: service.claim(task_id, "rev2"),
        lambda: service.release(task_id, "rev1"),
    ]
    for call in calls:
        with pytest.raises(Conflict):
            call()
    assert service.get_task(task_id).status is TaskStatus.DONE


@pytest.mark.parametrize("status", ["done", "failed", "canceled"])
def test_the_creator_may_close_a_task_it_does_not_hold(
    service: Service, task_id: int, status: str
) -> None:
    service.claim(task_id, "rev1")
    task = service.update_task(task_id, "author", status=status, note="closing")
    assert task.status == TaskStatus(status)
    assert service.task_history(task_id)[-1].agent_id == "author"


def test_the_creator_may_close_an_open_task(service: Service, task_id: int) -> None:
    assert service.update_task(task_id, "author", status="canceled").status is (TaskStatus.CANCELED)


def test_the_creator_may_not_work_a_task_it_does_not_hold(service: Service, task_id: int) -> None:
    service.claim(task_id, "rev1")
    with pytest.raises(Forbidden):
        service.update_task(task_id, "author", status="in_progress")
    with pytest.raises(Forbidden):
        service.update_task(task_id, "author", progress=10)


def test_neither_holder_nor_creator_may_update(
    service: Service, task_id: int, snapshot: Callable[[], Snapshot]
) -> None:
    service.claim(task_id, "rev1")
    before = snapshot()
    with pytest.raises(Forbidden, match="held by rev1") as caught:
        service.update_task(task_id, "rev2", status="done")
    assert caught.value.details["holder"] == "rev1"
    assert snapshot() == before
    service.release(task_id, "rev1")
    before = snapshot()
    with pytest.raises(Forbidden, match="not claimed"):
        service.update_task(task_id, "rev2", progress=1)
    assert snapshot() == before


def test_an_operator_may_update_any_task(service: Service, task_id: int) -> None:
    service.claim(task_id, "rev1")
    task = service.update_task(task_id, None, status="failed", result="CI is down")
    assert (task.status, task.result) == (TaskStatus.FAILED, "CI is down")
    assert service.task_history(task_id)[-1].agent_id is None


def test_an_unknown_task_or_agent_is_not_found(service: Service, task_id: int) -> None:
    with pytest.raises(NotFound):
        service.claim(task_id + 100, "rev1")
    with pytest.raises(NotFound):
        service.claim(task_id, "ghost")


def test_task_history_is_in_order(service: Service, task_id: int, clock: Clock) -> None:
    service.claim(task_id, "rev1")
    clock.advance(1)
    service.update_task(task_id, "rev1", progress=10)
    clock.advance(1)
    service.release(task_id, "rev1")
    clock.advance(1)
    service.claim(task_id, "rev2")
    history = service.task_history(task_id)
    assert [(h.kind, h.agent_id) for h in history] == [
        ("created", "author"),
        ("claimed", "rev1"),
        ("in_progress", "rev1"),
        ("released", "rev1"),
        ("claimed", "rev2"),
    ]
    assert [h.id for h in history] == sorted(h.id for h in history)
    times = [h.created_at for h in history]
    assert times == sorted(times)
    assert all(h.task_id == task_id for h in history)


def test_list_tasks_is_newest_first_and_filters(service: Service, task_id: int) -> None:
    second = service.send("author", "cap:review", "second", claimable=True).task_id
    third = service.send("author", "cap:review", "third", claimable=True).task_id
    assert second is not None and third is not None
    service.claim(second, "rev1")
    service.claim(third, "rev2")
    service.update_task(third, "rev2", status="done")
    assert [t.id for t in service.list_tasks()] == [third, second, task_id]
    assert [t.id for t in service.list_tasks(status="open")] == [task_id]
    assert [t.id for t in service.list_tasks(status=TaskStatus.CLAIMED)] == [second]
    assert [t.id for t in service.list_tasks(assignee="rev2")] == [third]
    assert [t.id for t in service.list_tasks(limit=1)] == [third]
    assert service.list_tasks(workspace="elsewhere") == []


def test_list_tasks_shows_expired_leases_as_open(
    service: Service, task_id: int, clock: Clock
) -> None:
    service.claim(task_id, "rev1", lease=10)
    clock.advance(11)
    service.heartbeat("rev1")
    assert [t.status for t in service.list_tasks()] == [TaskStatus.OPEN]


def test_an_agent_declaring_itself_offline_releases_its_claims(
    service: Service, task_id: int
) -> None:
    service.claim(task_id, "rev1")
    service.update_agent("rev1", status="offline")
    task = service.get_task(task_id, sweep=False)
    assert task.status is TaskStatus.OPEN
    assert task.assignee is None
    assert service.task_history(task_id)[-1].note == "holder offline"


def test_a_sweep_in_batches_takes_every_stale_agent_offline_and_reopens_each_claim(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More stale agents than one write transaction sweeps (``SWEEP_BATCH``, made 2
    here): every agent of every batch goes offline once with its event, the claims
    of agents in the first and the last batch reopen, and a lapsed lease of a live
    agent is released too."""
    monkeypatch.setattr(sweeps, "SWEEP_BATCH", 2)
    service.register("author")
    workers = [f"w{i}" for i in range(5)]
    for name in workers:
        service.register(name, capabilities=["build"])
    service.register("live", capabilities=["build"])
    first = service.send("author", "cap:build", "build A", claimable=True).task_id
    last = service.send("author", "cap:build", "build B", claimable=True).task_id
    lapsing = service.send("author", "cap:build", "build C", claimable=True).task_id
    assert first is not None and last is not None and lapsing is not None
    service.claim(first, workers[0])
    service.claim(last, workers[-1])
    service.claim(lapsing, "live", lease=30)
    clock.advance(STALE_TTL + 1)
    service.heartbeat("live")

    assert service.sweep() == {"agents_offline": 6, "tasks_released": 3}

    offline = [e.agent_id or "" for e in service.events(kinds=["agent.offline"])]
    assert sorted(offline) == sorted(["author", *workers])
    for task_id in (first, last, lapsing):
        assert service.get_task(task_id).status is TaskStatus.OPEN
    assert service.sweep() == {"agents_offline": 0, "tasks_released": 0}
