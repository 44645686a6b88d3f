"""Inboxes: unread vs all, order, cursors, limits, peek vs read, mark-read, unread counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from relaybus.bounds import UNREAD_COUNT_LIMIT, count_text
from relaybus.errors import InvalidInput, NotFound
from relaybus.models import Message
from relaybus.service import Service
from relaybus.service.inbox import _INBOX, _validated, _viewed
from relaybus.store import Store
from relaybus.store.statements import run

if TYPE_CHECKING:
    from tests.conftest import Clock


@pytest.fixture
def mail(service: Service) -> list[int]:
    """Five messages from alice to bob, ids oldest first."""
    service.register("alice")
    service.register("bob")
    return [service.send("alice", "bob", f"m{n}").id for n in range(5)]


def ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


def test_inbox_is_newest_first_by_default_and_oldest_first_on_request(
    service: Service, mail: list[int]
) -> None:
    assert ids(service.inbox("bob")) == mail[::-1]
    assert ids(service.inbox("bob", newest_first=False)) == mail


def test_peeking_does_not_mark_read(service: Service, mail: list[int]) -> None:
    peeked = service.inbox("bob")
    assert all(m.read_at is None for m in peeked)
    assert ids(service.inbox("bob")) == mail[::-1]
    assert service.unread_count("bob") == 5
    assert service.events(kinds=["message.read"]) == []


def test_reading_marks_what_it_returns_read(
    service: Service, mail: list[int], clock: Clock
) -> None:
    got = service.inbox("bob", mark_read=True, newest_first=False, limit=2)
    assert ids(got) == mail[:2]
    assert [m.read_at.timestamp() if m.read_at else None for m in got] == [clock.now] * 2
    assert all(m.recipients == ["bob"] for m in got)  # the state this read left
    assert ids(service.inbox("bob", newest_first=False)) == mail[2:]
    assert service.unread_count("bob") == 3
    clock.advance(1)
    everything = service.inbox("bob", unread_only=False, newest_first=False)
    assert ids(everything) == mail
    assert [m.read_at is not None for m in everything] == [True, True, False, False, False]
    assert everything[0].read_at is not None
    assert everything[0].read_at.timestamp() == clock.now - 1
    (event,) = service.events(kinds=["message.read"])
    assert (event.agent_id, event.data["message_ids"]) == ("bob", mail[:2])


def test_reading_again_marks_nothing_new(service: Service, mail: list[int]) -> None:
    service.inbox("bob", mark_read=True)
    assert service.inbox("bob", mark_read=True) == []
    assert len(service.events(kinds=["message.read"])) == 1


def test_the_since_cursor_returns_only_newer_messages(service: Service, mail: list[int]) -> None:
    assert ids(service.inbox("bob", since=mail[2], newest_first=False)) == mail[3:]
    assert service.inbox("bob", since=mail[-1]) == []
    assert ids(service.inbox("bob", since=0, newest_first=False)) == mail


def test_limit_bounds_the_result(service: Service, mail: list[int]) -> None:
    assert ids(service.inbox("bob", limit=1)) == [mail[-1]]
    assert ids(service.inbox("bob", limit=1000)) == mail[::-1]
    for bad in (0, -1, 1001):
        with pytest.raises(InvalidInput, match="limit"):
            service.inbox("bob", limit=bad)


def test_mark_read_by_ids(service: Service, mail: list[int]) -> None:
    assert service.mark_read("bob", ids=[mail[1], mail[3]]) == 2
    assert service.mark_read("bob", ids=[mail[1]]) == 0  # already read
    assert ids(service.inbox("bob", newest_first=False)) == [mail[0], mail[2], mail[4]]


def test_mark_read_ignores_messages_of_other_inboxes(service: Service, mail: list[int]) -> None:
    service.register("carol")
    other = service.send("alice", "carol", "for carol").id
    assert service.mark_read("bob", ids=[other]) == 0
    assert service.unread_count("carol") == 1


def test_mark_read_up_to_a_cursor_includes_the_cursor(service: Service, mail: list[int]) -> None:
    assert service.mark_read("bob", up_to=mail[2]) == 3
    assert ids(service.inbox("bob", newest_first=False)) == mail[3:]
    assert service.unread_count("bob") == 2


def test_mark_read_as_an_unknown_agent_is_not_found(service: Service, mail: list[int]) -> None:
    with pytest.raises(NotFound):
        service.mark_read("ghost", up_to=mail[-1])


def test_unread_count_of_an_empty_inbox_is_zero(service: Service, mail: list[int]) -> None:
    assert service.unread_count("alice") == 0


def test_the_unread_count_is_exact_below_its_limit_and_stops_at_it(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    for _ in range(2):
        service.send_many("alice", [{"to": "bob", "body": "x"}] * 500)
    assert service.unread_count("bob") == UNREAD_COUNT_LIMIT
    service.send("alice", "bob", "one more")
    assert service.unread_count("bob") == UNREAD_COUNT_LIMIT
    service.inbox("bob", limit=2, mark_read=True)
    assert service.unread_count("bob") == UNREAD_COUNT_LIMIT - 1
    assert count_text(service.unread_count("bob")) == "999"
    service.send("alice", "bob", "and another")
    assert count_text(service.unread_count("bob")) == "1000+"


def test_one_agent_reading_never_hides_a_message_from_another(service: Service) -> None:
    service.register("alice", tags=["team"])
    service.register("bob", tags=["team"])
    service.register("carol", tags=["team"])
    sent = service.send("alice", "tag:team", "for both")
    assert ids(service.inbox("bob", mark_read=True)) == [sent.id]
    assert ids(service.inbox("carol")) == [sent.id]
    assert service.unread_count("carol") == 1
    service.mark_read("carol", ids=[sent.id])
    assert ids(service.inbox("bob", unread_only=False)) == [sent.id]


def test_an_agent_only_sees_its_own_deliveries(service: Service, mail: list[int]) -> None:
    service.register("carol")
    service.send("alice", "carol", "private")
    assert ids(service.inbox("bob", unread_only=False, newest_first=False)) == mail
    assert service.inbox("alice", unread_only=False) == []


def test_a_whole_inbox_merges_read_and_unread_by_id_across_cursors_and_limits(
    service: Service, mail: list[int]
) -> None:
    # Read and unread deliveries live in two indexes; every page of the whole inbox
    # is the first (or last) messages of both, by id.
    service.mark_read("bob", ids=[mail[0], mail[2], mail[3]])
    for limit in range(1, 7):
        newest = service.inbox("bob", unread_only=False, limit=limit)
        assert ids(newest) == mail[::-1][:limit]
        for since in [0, *mail]:
            oldest = service.inbox(
                "bob", unread_only=False, newest_first=False, since=since, limit=limit
            )
            assert ids(oldest) == [m for m in mail if m > since][:limit]
    states = service.inbox("bob", unread_only=False, newest_first=False)
    assert [m.read_at is not None for m in states] == [True, False, True, True, False]


def test_an_inbox_page_built_without_validation_equals_the_validated_one(
    service: Service, store: Store, clock: Clock
) -> None:
    # The inbox builds its messages from the store's rows without validating them
    # (a measured hot path); validating the same rows must give the same messages.
    service.register("alice")
    service.register("bob", channels=["dev", "ops"])
    service.register("carol", channels=["dev"])
    service.send("alice", "bob", "plain")
    root = service.send(
        "alice",
        "broadcast",
        "to all",
        subject="release",
        channel="dev",
        priority="urgent",
        meta={"ticket": {"id": 7, "tags": ["a", "ü"]}, "n": 1.5, "none": None},
    )
    service.send("carol", "bob", "a reply", reply_to=root.id, priority="low")
    service.send("alice", "bob", "claim me", claimable=True, priority="high")
    clock.advance(0.123457)
    service.inbox("bob", limit=1, mark_read=True, newest_first=False)
    service.mark_delivered("bob", [root.id], via="hook")
    for unread_only in (True, False):
        for newest_first in (True, False):
            query = _INBOX[unread_only, newest_first]
            params = {"ws": "default", "aid": "bob", "since": 0, "limit": 50}
            with store.read() as conn:
                rows = run(conn, query, params)
            assert len(rows) == (3 if unread_only else 4)
            for kwargs in ({}, {"now": clock.now + 0.5, "read": {rows[0][0]}}):
                built = _viewed(rows, **kwargs)  # type: ignore[arg-type]
                validated = _validated(rows, **kwargs)  # type: ignore[arg-type]
                assert built == validated
                assert [m.model_fields_set for m in built] == [
                    m.model_fields_set for m in validated
                ]
                assert [m.model_dump_json() for m in built] == [
                    m.model_dump_json() for m in validated
                ]
                assert [repr(m) for m in built] == [repr(m) for m in validated]
