"""send_many (one transaction, all or nothing) and the server-side log readers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from relaybus.errors import InvalidInput, NotFound, TooLarge
from relaybus.service import Service
from tests.conftest import Snapshot


@pytest.fixture
def pair(service: Service) -> Service:
    service.register("alice")
    service.register("bob", tags=["backend"])
    service.register("carol", tags=["backend"])
    return service


def test_a_batch_stores_every_message_in_order(pair: Service) -> None:
    sent = pair.send_many(
        "alice",
        [
            {"to": "bob", "body": "one"},
            {"to": "tag:backend", "body": "two", "subject": "s", "priority": "high"},
            {"to": "carol", "body": "three", "claimable": True},
        ],
    )
    assert [m.body for m in sent] == ["one", "two", "three"]
    assert [m.id for m in sent] == sorted(m.id for m in sent)
    assert sent[1].recipients == ["bob", "carol"] and sent[1].priority == "high"
    assert sent[2].task_id is not None
    assert [m.body for m in pair.inbox("bob", newest_first=False)] == ["one", "two"]
    kinds = [e.kind for e in pair.events(kinds=["message.sent"])]
    assert kinds == ["message.sent"] * 3


@pytest.mark.parametrize(
    ("items", "error", "words"),
    [
        ([], InvalidInput, "1-500"),
        ([{"to": "bob", "body": "ok"}, {"to": "bob"}], InvalidInput, "message 1: "),
        ([{"to": "bob", "body": "ok", "colour": "red"}], InvalidInput, "unknown field 'colour'"),
        ([{"to": "bob", "body": "ok"}, {"to": "nobody", "body": "x"}], NotFound, "nobody"),
        ([{"to": "bob", "body": "x" * 70_000}], TooLarge, "message 0: "),
        ([{"to": "bob", "body": "ok", "priority": "meh"}], InvalidInput, "unknown priority"),
    ],
)
def test_a_batch_with_one_bad_message_stores_nothing(
    pair: Service,
    snapshot: Callable[[], Snapshot],
    items: list[dict[str, object]],
    error: type[Exception],
    words: str,
) -> None:
    before = snapshot()
    with pytest.raises(error, match=words):
        pair.send_many("alice", items)
    assert snapshot() == before


def test_log_tail_reads_every_workspace_from_a_cursor(service: Service) -> None:
    start = service.log_head()
    service.register("alice", workspace="one")
    service.register("alice", workspace="two")
    tail = service.log_tail(start)
    assert [(e.workspace, e.kind) for e in tail] == [
        ("one", "agent.registered"),
        ("two", "agent.registered"),
    ]
    assert service.log_head() == tail[-1].id
    assert service.log_tail(tail[0].id) == tail[1:]
    with pytest.raises(InvalidInput):
        service.log_tail(0, limit=0)


def test_messages_by_id_returns_messages_with_recipients(pair: Service) -> None:
    a = pair.send("alice", "tag:backend", "hello")
    b = pair.send("bob", "alice", "hi")
    found = pair.messages_by_id([b.id, a.id, 10_000_000])
    assert set(found) == {a.id, b.id}
    assert found[a.id].recipients == ["bob", "carol"] and found[a.id].body == "hello"
    assert pair.messages_by_id([]) == {}
