"""The visibility rule in the service: an agent sees what it sent and what was
delivered to it, nothing else; a hidden message is answered as a missing one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from relaybus.errors import NotFound
from relaybus.service import Service
from tests.conftest import Snapshot

TEAM = ("alice", "bob", "carol", "dave")


@pytest.fixture
def team(service: Service) -> Service:
    """alice, bob, carol (channel ops), dave (tag qa)."""
    service.register("alice")
    service.register("bob")
    service.register("carol", channels=["ops"])
    service.register("dave", tags=["qa"])
    return service


def missing_answer(call: Callable[[], object]) -> str:
    """The message of the NotFound ``call`` raises."""
    with pytest.raises(NotFound) as caught:
        call()
    return caught.value.message


def test_a_reply_to_a_message_the_sender_cannot_see_is_not_found_like_a_missing_id(
    team: Service, snapshot: Callable[[], Snapshot]
) -> None:
    private = team.send("bob", "carol", "the launch code is 42", subject="secret")
    before = snapshot()
    hidden = missing_answer(lambda: team.send("alice", None, "show me", reply_to=private.id))
    absent = missing_answer(lambda: team.send("alice", None, "show me", reply_to=10**9))
    assert hidden == f"no message {private.id} to reply to"
    assert absent == "no message 1000000000 to reply to"
    assert snapshot() == before


def test_the_reproduction_leaks_nothing_through_a_thread(team: Service) -> None:
    private = team.send("bob", "carol", "the launch code is 42", subject="secret")
    with pytest.raises(NotFound):
        team.send("alice", None, "show me", reply_to=private.id)
    with pytest.raises(NotFound, match=f"^no message {private.id}$"):
        team.thread(private.id, viewer="alice")
    with pytest.raises(NotFound, match=f"^no message {private.id}$"):
        team.get_message(private.id, viewer="alice")
    with pytest.raises(NotFound, match=f"^no message {private.id}$"):
        team.deliveries(private.id, viewer="alice")
    with pytest.raises(NotFound, match=f"^no message {private.id}$"):
        team.wait_deliveries(private.id, "read", 0, viewer="alice")


def test_a_thread_shows_each_viewer_only_the_messages_it_sent_or_received(team: Service) -> None:
    root = team.send("alice", "bob", "root")
    aside = team.send("bob", "carol", "aside", reply_to=root.id)
    answer = team.send("bob", "alice", "answer", reply_to=root.id)
    tagged = team.send("carol", "tag:qa", "to qa", reply_to=aside.id)

    def ids(viewer: str | None, of: int) -> list[int]:
        return [m.id for m in team.thread(of, viewer=viewer)]

    everything = [root.id, aside.id, answer.id, tagged.id]
    assert ids(None, tagged.id) == everything
    assert ids("bob", root.id) == [root.id, aside.id, answer.id]
    assert ids("alice", answer.id) == [root.id, answer.id]
    assert ids("carol", aside.id) == [aside.id, tagged.id]
    assert ids("dave", tagged.id) == [tagged.id]
    with pytest.raises(NotFound):
        ids("dave", root.id)


def test_broadcasts_and_channels_make_a_message_visible_to_whoever_they_reached(
    team: Service,
) -> None:
    everyone = team.send("alice", "broadcast", "all hands")
    ops = team.send("alice", "broadcast", "ops only", channel="ops")
    reached = {a: team.visible_message_ids([everyone.id, ops.id], viewer=a) for a in TEAM}
    assert reached == {
        "alice": {everyone.id, ops.id},
        "bob": {everyone.id, ops.id},  # no channels: hears every channel
        "carol": {everyone.id, ops.id},
        "dave": {everyone.id, ops.id},
    }
    team.update_agent("bob", channels=["dev"])
    later = team.send("alice", "broadcast", "ops again", channel="ops")
    assert team.visible_message_ids([later.id], viewer="bob") == set()
    assert team.get_message(later.id, viewer="carol").body == "ops again"


def test_a_removed_delivery_hides_the_message_again(team: Service) -> None:
    sent = team.send("alice", "bob", "before you left")
    team.unregister("bob")
    team.register("bob")  # the same id again: it never received that message
    with pytest.raises(NotFound):
        team.get_message(sent.id, viewer="bob")
    assert team.get_message(sent.id, viewer="alice").id == sent.id


def test_messages_of_another_workspace_are_not_found(team: Service) -> None:
    team.register("alice", workspace="other")
    team.register("bob", workspace="other")
    elsewhere = team.send("alice", "bob", "other workspace", workspace="other")
    with pytest.raises(NotFound):
        team.get_message(elsewhere.id, viewer="alice")
    with pytest.raises(NotFound):
        team.get_message(elsewhere.id)
    assert team.get_message(elsewhere.id, workspace="other", viewer="alice").id == elsewhere.id
