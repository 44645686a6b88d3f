"""Listing messages (the dashboard's Messages view): filters, pages, the visibility rule,
and the receipts of a page at once (both dialects)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from relaybus.errors import InvalidInput
from relaybus.models import Message
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Snapshot


@pytest.fixture
def mail(service: Service) -> Service:
    """alice, bob (tag backend), carol (channel deploys) and dave, and messages between
    them: direct, tag-routed, on a channel, a broadcast, and a reply."""
    service.register("alice")
    service.register("bob", tags=["backend"])
    service.register("carol", tags=["backend"], channels=["deploys"])
    service.register("dave")
    root = service.send("alice", "bob", "Hello Bob", subject="Greeting")
    service.send("bob", "tag:backend", "build is green")
    service.send("carol", "broadcast", "deploy at 5", channel="deploys")
    service.send("dave", "carol", "100% sure_ly", subject="odd chars")
    service.send("bob", None, "hello alice", reply_to=root.id)
    return service


def bodies(found: list[Message]) -> list[str]:
    return [m.body for m in found]


def test_an_admin_lists_every_message_newest_first_with_recipients(mail: Service) -> None:
    found = mail.list_messages()

    assert bodies(found) == [
        "hello alice",
        "100% sure_ly",
        "deploy at 5",
        "build is green",
        "Hello Bob",
    ]
    assert found[3].recipients == ["carol"]  # bob's own tag: not back to himself
    assert found[2].recipients == ["alice", "bob", "dave"]  # they have no channels: hear all
    assert found[0].thread_id == found[4].id


def test_filters_by_sender_recipient_participant_channel_thread_and_target(
    mail: Service,
) -> None:
    root = mail.list_messages(sender="alice")[0]

    assert bodies(mail.list_messages(sender="bob")) == ["hello alice", "build is green"]
    assert bodies(mail.list_messages(recipient="alice")) == ["hello alice", "deploy at 5"]
    assert bodies(mail.list_messages(participant="alice")) == [
        "hello alice",
        "deploy at 5",
        "Hello Bob",
    ]
    assert bodies(mail.list_messages(channel="deploys")) == ["deploy at 5"]
    assert bodies(mail.list_messages(thread=root.id)) == ["hello alice", "Hello Bob"]
    assert bodies(mail.list_messages(tag="backend")) == ["build is green"]
    assert bodies(mail.list_messages(to="tag:backend")) == ["build is green"]
    assert bodies(mail.list_messages(to="broadcast")) == ["deploy at 5"]
    assert bodies(mail.list_messages(to="carol", sender="dave")) == ["100% sure_ly"]
    assert mail.list_messages(sender="bob", recipient="dave") == []
    assert mail.list_messages(to="tag:backend", tag="frontend") == []  # both must hold


def test_text_search_is_case_insensitive_over_subject_and_body_and_literal(
    mail: Service,
) -> None:
    assert bodies(mail.list_messages(q="HELLO")) == ["hello alice", "Hello Bob"]
    assert bodies(mail.list_messages(q="greet")) == ["Hello Bob"]  # the subject
    assert bodies(mail.list_messages(q="0%")) == ["100% sure_ly"]
    assert bodies(mail.list_messages(q="e_l")) == ["100% sure_ly"]  # not "any one char"
    assert mail.list_messages(q="%") == mail.list_messages(q="100%")
    assert mail.list_messages(q="_") == mail.list_messages(q="sure_")
    assert len(mail.list_messages(q="")) == 5  # no search


def test_pages_go_by_id_with_before(mail: Service) -> None:
    everything = mail.list_messages()

    first = mail.list_messages(limit=2)
    second = mail.list_messages(limit=2, before=first[-1].id)
    third = mail.list_messages(limit=2, before=second[-1].id)

    assert first + second + third == everything
    assert mail.list_messages(before=everything[-1].id) == []


def test_an_agent_lists_only_what_it_sent_or_received(mail: Service) -> None:
    as_dave = mail.list_messages(viewer="dave")
    as_carol = mail.list_messages(viewer="carol")

    assert bodies(as_dave) == ["100% sure_ly", "deploy at 5"]
    assert bodies(as_carol) == ["100% sure_ly", "deploy at 5", "build is green"]
    # Filters narrow the agent's view; they never widen it.
    assert mail.list_messages(viewer="dave", sender="alice") == []
    assert bodies(mail.list_messages(viewer="dave", recipient="bob")) == ["deploy at 5"]
    assert mail.list_messages(viewer="dave", recipient="carol", sender="alice") == []
    assert mail.list_messages(viewer="dave", q="hello") == []
    root = mail.list_messages(sender="alice")[0]
    assert mail.list_messages(viewer="dave", thread=root.id) == []
    assert bodies(mail.list_messages(viewer="carol", participant="bob")) == [
        "deploy at 5",
        "build is green",
    ]


def test_receipts_of_a_page_follow_each_recipient_and_the_visibility_rule(
    mail: Service,
) -> None:
    page = mail.list_messages()
    hello, broadcast = page[-1], page[2]
    mail.inbox("bob", mark_read=True)

    found = mail.receipts([m.id for m in page])
    as_dave = mail.receipts([hello.id, broadcast.id], viewer="dave")

    assert [(d.message_id, d.agent_id) for d in found][:1] == [(hello.id, "bob")]
    states = {(d.message_id, d.agent_id): d.state.value for d in found}
    assert states[(hello.id, "bob")] == "read"
    assert states[(broadcast.id, "alice")] == "queued"
    assert len(found) == sum(len(m.recipients) for m in page)
    # dave may not see alice's hello: no receipt of it, as for a missing id.
    assert {d.message_id for d in as_dave} == {broadcast.id}
    assert mail.receipts([hello.id, 10**9], viewer="dave") == []
    assert mail.receipts([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": 0},
        {"limit": 1001},
        {"before": 0},
        {"thread": -1},
        {"sender": "a b"},
        {"recipient": ""},
        {"participant": "x" * 200},
        {"channel": "#general"},
        {"to": "nope:x"},
        {"tag": "two words"},
        {"q": "x" * 201},
        {"q": "nul\x00"},
        {"viewer": "no one"},
    ],
)
def test_bad_filters_are_refused_and_change_nothing(
    mail: Service, snapshot: Callable[[], Snapshot], bad: dict[str, object]
) -> None:
    before = snapshot()

    with pytest.raises(InvalidInput):
        mail.list_messages(**bad)  # type: ignore[arg-type]

    assert snapshot() == before


def test_receipts_refuse_too_many_or_bad_ids(mail: Service) -> None:
    with pytest.raises(InvalidInput):
        mail.receipts(range(1, 1002))
    with pytest.raises(InvalidInput):
        mail.receipts([0])
