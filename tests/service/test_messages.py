"""Messages: routing by target expression and channel, threads, stored fields, events."""

from __future__ import annotations

import pytest

from relaybus.errors import NotFound
from relaybus.models import Priority
from relaybus.service import Service


@pytest.fixture
def team(service: Service) -> Service:
    """alice (backend, reviewer), bob (backend, frontend; channel dev), carol (frontend,
    reviewer; channels ops and dev), dave (no tags, hears every channel)."""
    service.register("alice", label="API writer", tags=["backend"], capabilities=["review"])
    service.register("bob", label="UI writer", tags=["backend", "frontend"], channels=["dev"])
    service.register(
        "carol", label="QA", tags=["frontend"], capabilities=["review"], channels=["ops", "dev"]
    )
    service.register("dave")
    return service


def inbox_ids(service: Service, agent: str) -> list[int]:
    return [m.id for m in service.inbox(agent, unread_only=False)]


@pytest.mark.parametrize(
    ("target", "recipients"),
    [
        ("bob", ["bob"]),
        ("tag:backend", ["bob"]),  # alice is the sender: never her own recipient
        ("tag:frontend", ["bob", "carol"]),
        ("cap:review", ["carol"]),
        ("label:QA", ["carol"]),
        ("label:UI writer", ["bob"]),
        ("broadcast", ["bob", "carol", "dave"]),
    ],
)
def test_a_target_expression_reaches_its_agents(
    team: Service, target: str, recipients: list[str]
) -> None:
    sent = team.send("alice", target, "hello")
    assert sorted(sent.recipients) == recipients
    assert team.get_message(sent.id).recipients == recipients
    for agent in ["alice", "bob", "carol", "dave"]:
        assert inbox_ids(team, agent) == ([sent.id] if agent in recipients else [])


@pytest.mark.parametrize(
    ("target", "channel", "recipients"),
    [
        ("broadcast", "ops", ["carol", "dave"]),  # bob listens on dev only
        ("broadcast", "dev", ["bob", "carol", "dave"]),
        ("tag:frontend", "ops", ["carol"]),
        ("broadcast", "random", ["dave"]),  # agents with no channels hear every channel
    ],
)
def test_a_channel_narrows_a_target_to_its_subscribers(
    team: Service, target: str, channel: str, recipients: list[str]
) -> None:
    sent = team.send("alice", target, "hello", channel=channel)
    assert sorted(sent.recipients) == recipients
    assert sent.channel == channel


def test_a_direct_message_on_a_channel_the_agent_ignores_is_not_found(team: Service) -> None:
    with pytest.raises(NotFound, match="channel") as caught:
        team.send("alice", "bob", "hello", channel="ops")
    assert caught.value.details == {"target": "bob", "channel": "ops"}


def test_the_sender_is_never_a_recipient(team: Service) -> None:
    sent = team.send("carol", "cap:review", "who reviews?")
    assert sent.recipients == ["alice"]
    assert inbox_ids(team, "carol") == []
    with pytest.raises(NotFound, match="only the sender"):
        team.send("carol", "label:QA", "talking to myself")
    with pytest.raises(NotFound, match="only the sender"):
        team.send("carol", "carol", "talking to myself")


def test_send_stores_subject_priority_meta_and_returns_the_stored_message(team: Service) -> None:
    sent = team.send(
        "alice",
        "bob",
        "body text",
        subject="Subject",
        priority="urgent",
        meta={"pr": 12, "files": ["a.py"], "nested": {"ok": True}},
    )
    stored = team.get_message(sent.id)
    assert stored == sent
    assert stored.sender == "alice"
    assert stored.to == "bob"
    assert stored.subject == "Subject"
    assert stored.body == "body text"
    assert stored.priority is Priority.URGENT
    assert stored.meta == {"pr": 12, "files": ["a.py"], "nested": {"ok": True}}
    assert stored.thread_id == sent.id
    assert stored.reply_to is None
    assert stored.task_id is None
    (got,) = team.inbox("bob")
    assert got.model_dump(exclude={"recipients"}) == stored.model_dump(exclude={"recipients"})


def test_target_expressions_are_stored_in_canonical_form(team: Service) -> None:
    assert team.send("alice", "  tag: frontend ", "x").to == "tag:frontend"
    assert team.send("alice", " bob ", "x").to == "bob"


def test_message_ids_increase(team: Service) -> None:
    ids = [team.send("alice", "bob", str(n)).id for n in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_a_reply_joins_the_thread_of_the_root(team: Service) -> None:
    root = team.send("alice", "bob", "question")
    answer = team.send("bob", None, "answer", reply_to=root.id)
    follow_up = team.send("alice", None, "thanks", reply_to=answer.id)
    assert (answer.reply_to, answer.thread_id) == (root.id, root.id)
    assert (follow_up.reply_to, follow_up.thread_id) == (answer.id, root.id)
    assert team.get_message(follow_up.id).thread_id == root.id


def test_a_reply_without_a_target_goes_to_the_parents_sender(team: Service) -> None:
    root = team.send("alice", "tag:frontend", "who is around?")
    answer = team.send("carol", None, "me", reply_to=root.id)
    assert answer.recipients == ["alice"]
    assert answer.to == "alice"


def test_a_reply_to_ones_own_message_goes_to_its_target(team: Service) -> None:
    root = team.send("alice", "tag:frontend", "who is around?")
    again = team.send("alice", None, "anyone?", reply_to=root.id)
    assert again.to == "tag:frontend"
    assert sorted(again.recipients) == ["bob", "carol"]


def test_a_reply_may_name_another_target(team: Service) -> None:
    root = team.send("alice", "bob", "question")
    cc = team.send("bob", "carol", "what do you think?", reply_to=root.id)
    assert cc.recipients == ["carol"]
    assert cc.thread_id == root.id


def test_the_thread_view_is_the_same_from_any_message(team: Service) -> None:
    root = team.send("alice", "bob", "q")
    a = team.send("bob", None, "a", reply_to=root.id)
    b = team.send("alice", None, "b", reply_to=a.id)
    team.send("alice", "bob", "another thread")
    for member in (root, a, b):
        assert [m.id for m in team.thread(member.id)] == [root.id, a.id, b.id]


def test_thread_of_a_missing_message_is_not_found(team: Service) -> None:
    with pytest.raises(NotFound):
        team.thread(999)


def test_every_send_appends_message_sent_with_recipients(team: Service) -> None:
    root = team.send("alice", "tag:frontend", "hi", subject="s", channel="dev")
    reply = team.send("bob", None, "yo", reply_to=root.id, priority="high")
    first, second = team.events(kinds=["message.sent"])
    assert first.agent_id == "alice"
    assert first.data["message_id"] == root.id
    assert sorted(first.data["recipients"]) == ["bob", "carol"]
    assert first.data["to"] == "tag:frontend"
    assert (first.data["channel"], first.data["subject"]) == ("dev", "s")
    assert first.data["thread_id"] == root.id
    assert second.data["message_id"] == reply.id
    assert second.data["recipients"] == ["alice"]
    assert second.data["thread_id"] == root.id
    assert second.data["priority"] == "high"


def test_messages_stay_in_their_workspace(service: Service) -> None:
    for ws in ("a", "b"):
        service.register("alice", workspace=ws)
        service.register("bob", workspace=ws)
    sent = service.send("alice", "bob", "in a", workspace="a")
    assert [m.id for m in service.inbox("bob", workspace="a")] == [sent.id]
    assert service.inbox("bob", workspace="b") == []
    with pytest.raises(NotFound):
        service.get_message(sent.id, workspace="b")
    with pytest.raises(NotFound):
        service.send("bob", None, "reply across workspaces", reply_to=sent.id, workspace="b")
