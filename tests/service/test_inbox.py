"""Inboxes: unread vs all, order, cursors, limits, peek vs read, mark-read, unread counts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from relaybus.bounds import UNREAD_COUNT_LIMIT, count_text
from relaybus.errors import InvalidInput, NotFound
from relaybus.models import Message, Priority
from relaybus.service import Service
from relaybus.service.inbox_page import PAGES, validated, viewed
from relaybus.store import Store
from relaybus.store.statements import cache_of, run

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
            query = PAGES[unread_only, newest_first]
            params = {"ws": "default", "aid": "bob", "since": 0, "limit": 50}
            with store.read() as conn:
                rows = run(conn, query, params)
                raw = run(conn, query, params, raw=True)  # meta as JSON text on SQLite
                text = cache_of(conn) is not None
            assert len(rows) == (3 if unread_only else 4)
            assert text == (store.dialect == "sqlite")
            for kwargs in ({}, {"now": clock.now + 0.5, "read": {rows[0][0]}}):
                built = viewed(raw, json_text=text, **kwargs)  # type: ignore[arg-type]
                expected = validated(rows, **kwargs)  # type: ignore[arg-type]
                assert viewed(rows, **kwargs) == built  # type: ignore[arg-type]
                assert validated(raw, json_text=text, **kwargs) == expected  # type: ignore[arg-type]
                assert built == expected
                assert [m.model_fields_set for m in built] == [m.model_fields_set for m in expected]
                assert [m.model_dump_json() for m in built] == [
                    m.model_dump_json() for m in expected
                ]
                assert [repr(m) for m in built] == [repr(m) for m in expected]


def test_an_inbox_gives_every_message_the_agents_it_was_delivered_to(service: Service) -> None:
    # A direct message to the reader skips the lookup of its deliveries (it has one,
    # the reader's); every other kind of target looks them up. Both must give the
    # agents the send delivered to, on every page shape.
    service.register("alice", tags=["team"])
    service.register("bob", label="bob", tags=["team"], channels=["dev"])
    service.register("carol", tags=["team"], capabilities=["review"])
    service.register("dave", capabilities=["review"])
    sent = [
        service.send("alice", "bob", "direct"),
        service.send("alice", "tag:team", "tag"),
        service.send("carol", "broadcast", "all"),
        service.send("carol", "bob", "on a channel", channel="dev"),
        service.send("alice", "label:bob", "by label"),
        service.send("dave", "carol", "not bob's"),
    ]
    sent.append(service.send("bob", "alice", "bob writes", reply_to=sent[1].id))
    sent.append(service.send("alice", "carol", "back", reply_to=sent[-1].id))
    sent.append(service.send("alice", "bob", "reply to the thread", reply_to=sent[2].id))
    service.mark_read("bob", ids=[sent[1].id, sent[3].id])
    expected = {m.id: m.recipients for m in sent}
    for reader in ("alice", "bob", "carol", "dave"):
        for unread_only in (True, False):
            for newest_first in (True, False):
                page = service.inbox(
                    reader, unread_only=unread_only, newest_first=newest_first, limit=1000
                )
                assert page, reader
                assert {m.id: m.recipients for m in page} == {m.id: expected[m.id] for m in page}
                assert all(reader in m.recipients for m in page)
    assert expected[sent[0].id] == ["bob"]
    assert expected[sent[2].id] == ["alice", "bob", "dave"]


_ids = st.integers(min_value=1, max_value=2**63 - 1)
_names = st.text("abc.-@/", min_size=1, max_size=6).map("a{}".format)
_texts = st.text(max_size=20)
# Float Unix seconds as the store keeps them, with edges: the epoch, exact halves of
# a microsecond (which datetime.fromtimestamp rounds to even and pydantic up), a
# second's last microsecond, the far future.
_times = st.floats(min_value=0, max_value=2e10 - 1, allow_nan=False) | st.sampled_from(
    [0.0, 5e-7, 2.5e-6, 1772907314.8828125, 1764777600.9999995, 1e10]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=6,
)
_rows = st.tuples(
    _ids,  # id
    _names,  # workspace
    _names,  # sender
    _names | st.builds("tag:{}".format, _names) | st.just("broadcast"),  # target
    st.none() | _names,  # channel
    st.none() | _texts,  # subject
    _texts,  # body
    st.none() | _ids,  # reply_to
    st.none() | _ids,  # thread_id
    st.sampled_from([p.value for p in Priority]),  # priority
    st.dictionaries(_texts, _json, max_size=3),  # meta
    st.none() | _ids,  # task_id
    _times,  # created_at
    st.none() | _times,  # the reader's read_at
    st.none() | _times,  # the reader's delivered_at
    # The recipients, joined; NULL for a direct message to the reader (the target).
    st.none() | st.lists(_names, min_size=1, max_size=4).map(",".join),
)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(_rows, max_size=6),
    now=st.none() | _times,
    read=st.sets(st.integers(0, 5), max_size=3),
)
def test_messages_built_without_validation_equal_validated_ones_for_any_stored_row(
    rows: list[tuple[object, ...]], now: float | None, read: set[int]
) -> None:
    read_ids = {rows[i][0] for i in read if i < len(rows)} if now is not None else set()
    kwargs = {"now": now, "read": read_ids}
    built = viewed(rows, **kwargs)  # type: ignore[arg-type]
    expected = validated(rows, **kwargs)  # type: ignore[arg-type]
    # SQLite's raw rows: meta as the JSON text the store wrote.
    texts = [(*r[:10], json.dumps(r[10]), *r[11:]) for r in rows]
    assert viewed(texts, json_text=True, **kwargs) == built  # type: ignore[arg-type]
    assert built == expected
    assert [m.__dict__ for m in built] == [m.__dict__ for m in expected]
    assert [m.model_fields_set for m in built] == [m.model_fields_set for m in expected]
    assert [repr(m) for m in built] == [repr(m) for m in expected]
    assert [m.model_dump_json() for m in built] == [m.model_dump_json() for m in expected]


@pytest.mark.parametrize(
    "column, value, json_text",
    [
        (9, "whenever", False),
        (10, ["not", "an", "object"], False),
        (10, "{}", False),
        (10, '["not", "an", "object"]', True),
        (10, '"{}"', True),
    ],
)
def test_a_row_the_fast_build_does_not_expect_is_validated_and_refused(
    column: int, value: object, json_text: bool
) -> None:
    row = [7, "default", "alice", "bob", None, None, "x", None, None, "normal", {}, None, 1.0]
    row += [None, None, "bob"]
    good = list(row)
    if json_text:
        good[10] = '{"a": [1]}'
    row[column] = value
    assert viewed([tuple(good)], json_text=json_text) == validated(
        [tuple(good)], json_text=json_text
    )
    assert viewed([tuple(good)], json_text=json_text)[0].meta == ({"a": [1]} if json_text else {})
    with pytest.raises(ValidationError):
        viewed([tuple(good), tuple(row)], json_text=json_text)


def test_the_messages_of_a_page_stay_frozen_and_a_copy_leaves_the_others_as_they_were(
    service: Service, mail: list[int]
) -> None:
    # The page's messages share one fields set, which only frozen models allow.
    page = service.inbox("bob")
    assert Message.model_config.get("frozen") is True
    with pytest.raises(ValidationError):
        page[0].body = "changed"
    copied = page[0].model_copy(update={"body": "changed"})
    assert copied.body == "changed"
    assert [m.body for m in page] == [f"m{n}" for n in reversed(range(5))]
    assert all(m.model_fields_set == set(Message.model_fields) for m in [*page, copied])
    marked = service.hand_over("bob", page, mark_read=True)
    assert all(m.read_at is not None for m in marked)
    assert all(m.read_at is None for m in page)
