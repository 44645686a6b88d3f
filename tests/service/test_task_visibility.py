"""Tasks follow the visibility rule: a task is seen by the agents that may see its
message (its creator, the recipients) and its holder; only a recipient claims it;
a hidden task is answered exactly like a missing one, on every operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from relaybus.client import Relay
from relaybus.errors import Forbidden, NotFound
from relaybus.models import TaskStatus
from relaybus.service import Service
from relaybus.store.schema import tasks

if TYPE_CHECKING:
    from tests.conftest import Clock, Snapshot

MISSING = 10**9


@pytest.fixture
def team(service: Service) -> Service:
    """alice, bob, carol, dave (tag qa, channel dev only), erin (tag qa, channel ops only)."""
    for name in ("alice", "bob", "carol"):
        service.register(name)
    service.register("dave", tags=["qa"], channels=["dev"])
    service.register("erin", tags=["qa"], channels=["ops"])
    return service


def secret_task(service: Service, to: str = "carol", **fields: Any) -> int:
    """A claimable bob → ``to`` message about a secret; returns its task id."""
    sent = service.send(
        "bob", to, "the launch code is 42", subject="secret", claimable=True, **fields
    )
    assert sent.task_id is not None
    return sent.task_id


def refusal(
    call: Callable[[], object], error: type[Exception] = NotFound
) -> tuple[str, dict[str, Any]]:
    """The message and details (task id taken out) of the error ``call`` raises."""
    with pytest.raises(error) as caught:
        call()
    exc: Any = caught.value
    details = {k: v for k, v in exc.details.items() if k != "task"}
    return exc.message, details


def test_a_task_is_seen_only_by_its_creator_and_the_recipients_of_its_message(
    team: Service,
) -> None:
    private = secret_task(team)
    qa = secret_task(team, "tag:qa")
    ops = secret_task(team, "tag:qa", channel="ops")

    def listed(viewer: str | None) -> list[int]:
        return [t.id for t in team.list_tasks(viewer=viewer)]

    assert listed(None) == [ops, qa, private]
    assert listed("bob") == [ops, qa, private]
    assert listed("carol") == [private]
    assert listed("dave") == [qa]  # ops reached erin, not dave
    assert listed("erin") == [ops, qa]
    assert listed("alice") == []
    assert team.get_task(private, viewer="carol").body == "the launch code is 42"
    assert [e.kind for e in team.task_history(private, viewer="bob")] == ["created"]
    assert team.visible_task_ids([private, qa, ops, MISSING], viewer="erin") == {qa, ops}
    assert team.task_audience(qa) == {"bob", "dave", "erin"}


def test_a_hidden_task_is_answered_exactly_like_a_missing_one(team: Service) -> None:
    private = secret_task(team)
    for read in (team.get_task, team.task_history):
        hidden = refusal(lambda: read(private, viewer="alice"))  # noqa: B023
        absent = refusal(lambda: read(MISSING, viewer="alice"))  # noqa: B023
        assert hidden == (f"no task {private}", {})
        assert absent == (f"no task {MISSING}", {})


def test_an_agent_that_may_not_see_a_task_cannot_claim_renew_release_or_update_it(
    team: Service, snapshot: Callable[[], Snapshot]
) -> None:
    private = secret_task(team)
    team.claim(private, "carol")
    before = snapshot()
    calls: list[Callable[[int], object]] = [
        lambda t: team.claim(t, "alice"),
        lambda t: team.renew(t, "alice"),
        lambda t: team.release(t, "alice"),
        lambda t: team.update_task(t, "alice", status="done"),
        lambda t: team.update_task(t, "alice", progress=50),
    ]
    for call in calls:
        assert refusal(lambda: call(private)) == (f"no task {private}", {})  # noqa: B023
        assert refusal(lambda: call(MISSING)) == (f"no task {MISSING}", {})  # noqa: B023
    assert snapshot() == before
    assert team.get_task(private).assignee == "carol"


def test_only_a_recipient_claims_and_the_creator_may_close_but_not_claim(
    team: Service, snapshot: Callable[[], Snapshot]
) -> None:
    qa = secret_task(team, "tag:qa")
    before = snapshot()
    with pytest.raises(Forbidden, match="only a recipient"):
        team.claim(qa, "bob")
    assert snapshot() == before
    assert team.claim(qa, "dave").assignee == "dave"
    with pytest.raises(Forbidden):
        team.update_task(qa, "erin", progress=10)  # sees it, does not hold it
    closed = team.update_task(qa, "bob", status="canceled", note="not needed")
    assert closed.status is TaskStatus.CANCELED


def test_a_listing_filters_in_the_query_so_its_limit_counts_only_visible_tasks(
    team: Service,
) -> None:
    mine = secret_task(team, "alice")
    for _ in range(3):
        secret_task(team)  # newer, hidden from alice
    assert [t.id for t in team.list_tasks(viewer="alice", limit=1)] == [mine]
    assert [t.id for t in team.list_tasks(viewer="alice", status="open", limit=1)] == [mine]


def test_the_holder_and_creator_keep_a_task_after_retention_deleted_its_message(
    team: Service, clock: Clock
) -> None:
    qa = secret_task(team, "tag:qa")
    team.claim(qa, "dave")
    clock.advance(10)
    team.heartbeat("dave")
    assert team.prune(message_days=0).messages == 1
    assert team.task_audience(qa) == {"bob", "dave"}
    assert team.get_task(qa, viewer="dave").assignee == "dave"
    assert team.get_task(qa, viewer="bob").id == qa
    with pytest.raises(NotFound):
        team.get_task(qa, viewer="erin")  # a recipient, but the message is gone
    assert team.update_task(qa, "dave", status="done").status is TaskStatus.DONE


def test_a_task_without_a_message_is_seen_by_its_creator_and_claimed_by_nobody(
    team: Service, clock: Clock
) -> None:
    with team.store.write() as conn:
        task_id = conn.execute(
            tasks.insert()
            .values(
                workspace="default",
                title="made elsewhere",
                target="tag:qa",
                creator="alice",
                status="open",
                progress=0,
                occurrence_count=1,
                meta={},
                created_at=clock.now,
                updated_at=clock.now,
            )
            .returning(tasks.c.id)
        ).scalar_one()
    assert [t.id for t in team.list_tasks(viewer="alice")] == [task_id]
    assert team.list_tasks(viewer="dave") == []
    with pytest.raises(NotFound):
        team.claim(task_id, "dave")
    with pytest.raises(Forbidden):
        team.claim(task_id, "alice")
    assert team.update_task(task_id, "alice", status="canceled").status is TaskStatus.CANCELED


def test_the_embedded_sdk_acting_as_an_agent_sees_only_its_tasks(team: Service) -> None:
    private = secret_task(team)
    relay = Relay.embedded(team)
    alice, carol = relay.agent("alice"), relay.agent("carol")
    assert alice.tasks() == []
    with pytest.raises(NotFound, match=f"^no task {private}$"):
        alice.task(private)
    with pytest.raises(NotFound, match=f"^no task {private}$"):
        alice.task_history(private)
    with pytest.raises(NotFound, match=f"^no task {private}$"):
        alice.claim(private)
    assert [t.id for t in carol.tasks()] == [private]
    assert carol.claim(private).assignee == "carol"
    assert [t.id for t in carol.tasks(assignee="carol")] == [private]
    assert [e.kind for e in carol.task_history(private)] == ["created", "claimed"]
    assert [t.id for t in relay.tasks()] == [private]  # the relay itself: the workspace
