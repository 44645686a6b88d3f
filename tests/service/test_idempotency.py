"""Idempotent sends: the same key from the same sender within a day stores one message,
on both dialects, under racing writers too; other senders, expired keys and other
requests behave as the IETF idempotency-key draft says."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from relaybus.errors import Conflict, InvalidInput, NotFound
from relaybus.models import Message
from relaybus.service import Service, idempotency
from relaybus.service import messages as message_ops
from relaybus.store import Store
from relaybus.store.schema import events, idempotency_keys, messages, tasks
from tests.conftest import HUNG, Clock

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


@pytest.fixture
def team(service: Service) -> Service:
    for agent in ("alice", "bob", "carol"):
        service.register(agent)
    return service


def count(store: Store, table: sa.Table, *where: Any) -> int:
    with store.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def sent_events(store: Store) -> int:
    return count(store, events, events.c.kind == "message.sent")


def test_the_same_key_twice_stores_one_message_and_returns_it_both_times(team: Service) -> None:
    first = team.send(
        "alice", "bob", "deploy at 5", subject="ops", meta={"pr": 7}, idempotency_key=KEY
    )
    again = team.send(
        "alice", "bob", "deploy at 5", subject="ops", meta={"pr": 7}, idempotency_key=KEY
    )
    assert again == first
    assert count(team.store, messages) == 1
    assert sent_events(team.store) == 1
    assert [m.id for m in team.inbox("bob")] == [first.id]


def test_a_replayed_claimable_send_creates_no_second_task(team: Service) -> None:
    first = team.send("alice", "broadcast", "review PR 7", claimable=True, idempotency_key=KEY)
    again = team.send("alice", "broadcast", "review PR 7", claimable=True, idempotency_key=KEY)
    assert again == first
    assert first.task_id is not None
    assert count(team.store, tasks) == 1


def test_the_same_key_from_another_sender_or_workspace_is_another_message(team: Service) -> None:
    team.register("alice", workspace="other")
    team.register("bob", workspace="other")
    by_alice = team.send("alice", "bob", "hi", idempotency_key=KEY)
    by_carol = team.send("carol", "bob", "hi", idempotency_key=KEY)
    elsewhere = team.send("alice", "bob", "hi", workspace="other", idempotency_key=KEY)
    assert len({by_alice.id, by_carol.id, elsewhere.id}) == 3
    assert count(team.store, messages) == 3


def test_sends_without_a_key_are_never_merged(team: Service) -> None:
    one = team.send("alice", "bob", "hi")
    two = team.send("alice", "bob", "hi")
    assert one.id != two.id


def test_a_key_stays_bound_for_a_day_then_sends_a_new_message(team: Service, clock: Clock) -> None:
    first = team.send("alice", "bob", "hi", idempotency_key=KEY)
    clock.advance(idempotency.KEY_TTL - 1)
    assert team.send("alice", "bob", "hi", idempotency_key=KEY).id == first.id
    clock.advance(1)
    later = team.send("alice", "bob", "hi", idempotency_key=KEY)
    assert later.id != first.id
    assert count(team.store, messages) == 2
    # The key now belongs to the new message, for another day.
    assert team.send("alice", "bob", "hi", idempotency_key=KEY).id == later.id


def test_an_expired_key_may_be_used_for_a_different_message(team: Service, clock: Clock) -> None:
    team.send("alice", "bob", "first", idempotency_key=KEY)
    clock.advance(idempotency.KEY_TTL)
    assert team.send("alice", "carol", "something else", idempotency_key=KEY).body == (
        "something else"
    )


def test_prune_deletes_keys_older_than_a_day_and_keeps_younger_ones(
    team: Service, clock: Clock
) -> None:
    team.send("alice", "bob", "old", idempotency_key="old")
    clock.advance(idempotency.KEY_TTL / 2)
    team.send("alice", "bob", "young", idempotency_key="young")
    clock.advance(idempotency.KEY_TTL / 2)
    team.prune()
    with team.store.read() as conn:
        left = conn.execute(sa.select(idempotency_keys.c.key)).scalars().all()
    assert left == ["young"]


def test_a_retry_after_retention_deleted_the_message_is_a_conflict(
    team: Service, clock: Clock
) -> None:
    first = team.send("alice", "bob", "hi", idempotency_key=KEY)
    clock.advance(1)
    team.prune(message_days=0)
    with pytest.raises(Conflict, match="retention has deleted") as refused:
        team.send("alice", "bob", "hi", idempotency_key=KEY)
    assert refused.value.details["message_id"] == first.id
    assert count(team.store, messages) == 0


def test_the_background_prune_visits_workspaces_that_only_have_keys_left(
    team: Service, clock: Clock
) -> None:
    team.register("solo", workspace="gone")
    team.register("peer", workspace="gone")
    team.send("solo", "peer", "hi", workspace="gone", idempotency_key=KEY)
    with team.store.write() as conn:  # everything but the key is gone
        for table in (messages, events):
            conn.execute(table.delete().where(table.c.workspace == "gone"))
    team.unregister("solo", workspace="gone")
    team.unregister("peer", workspace="gone")
    assert "gone" in team.workspaces()
    clock.advance(idempotency.KEY_TTL)
    team.prune(workspace="gone")
    assert count(team.store, idempotency_keys) == 0


@pytest.mark.parametrize(
    "changed",
    [
        {"body": "deploy at 6"},
        {"to": "carol"},
        {"subject": "other"},
        {"claimable": True},
        {"priority": "high"},
        {"meta": {"pr": 8}},
    ],
)
def test_the_same_key_with_a_different_request_is_a_conflict_that_stores_nothing(
    team: Service, changed: dict[str, Any]
) -> None:
    request: dict[str, Any] = {"to": "bob", "body": "deploy at 5", "meta": {"pr": 7}}
    first = team.send("alice", **request, idempotency_key=KEY)
    with pytest.raises(Conflict, match="already used for a different request") as refused:
        team.send("alice", **{**request, **changed}, idempotency_key=KEY)
    assert refused.value.details == {"idempotency_key": KEY, "message_ids": [first.id]}
    assert count(team.store, messages) == 1


def test_equal_requests_spelled_differently_share_a_key(team: Service) -> None:
    first = team.send("alice", "bob", "hi", meta={"a": 1, "b": [1, 2]}, idempotency_key=KEY)
    again = team.send(
        "alice", "bob", "hi", meta={"b": (1, 2), "a": 1}, priority="normal", idempotency_key=KEY
    )
    assert again.id == first.id


@pytest.mark.parametrize(
    "key", ["", " ", "x" * 256, "tab\there", "caf\u00e9", " leading", "trailing ", "nul\x00"]
)
def test_a_malformed_key_is_invalid_input_and_stores_nothing(team: Service, key: str) -> None:
    with pytest.raises(InvalidInput, match="invalid idempotency key"):
        team.send("alice", "bob", "hi", idempotency_key=key)
    assert count(team.store, messages) == 0


def test_the_longest_key_and_every_printable_character_are_accepted(team: Service) -> None:
    printable = "".join(map(chr, range(0x21, 0x7F)))
    assert team.send("alice", "bob", "hi", idempotency_key="k" * 255).id
    assert team.send("alice", "bob", "hi", idempotency_key=f"{printable} {printable}").id


def test_a_refused_send_binds_no_key(team: Service) -> None:
    with pytest.raises(NotFound):
        team.send("alice", "nobody", "hi", idempotency_key=KEY)
    assert team.send("alice", "bob", "hi", idempotency_key=KEY).recipients == ["bob"]


def test_a_retry_after_the_sender_registered_again_still_gets_the_original(
    team: Service,
) -> None:
    epoch = team.get_agent("alice").epoch
    first = team.send("alice", "bob", "hi", epoch=epoch, idempotency_key=KEY)
    team.register("alice", instance_id="another session")
    assert team.send("alice", "bob", "hi", epoch=epoch, idempotency_key=KEY) == first


def test_a_batch_key_covers_the_whole_batch(team: Service) -> None:
    items = [{"to": "bob", "body": "one"}, {"to": "carol", "body": "two"}]
    first = team.send_many("alice", items, idempotency_key=KEY)
    assert team.send_many("alice", items, idempotency_key=KEY) == first
    assert count(team.store, messages) == 2
    with pytest.raises(Conflict):
        team.send_many("alice", items[:1], idempotency_key=KEY)
    with pytest.raises(Conflict):
        team.send("alice", "bob", "one", idempotency_key=KEY)


def test_racing_senders_on_separate_connections_store_one_message(team: Service) -> None:
    # As many stores as threads: each its own writer, like replicas or processes.
    url = team.store.url.render_as_string(hide_password=False)
    racers = 6
    start = threading.Barrier(racers)

    def send(_: int) -> Message:
        with Store(url) as own:
            start.wait(HUNG)
            return Service(own).send("alice", "bob", "exactly once", idempotency_key=KEY)

    with ThreadPoolExecutor(racers) as pool:
        answers = list(pool.map(send, range(racers), timeout=HUNG))
    assert len({m.model_dump_json() for m in answers}) == 1
    assert count(team.store, messages) == 1
    assert count(team.store, idempotency_keys) == 1


def test_a_writer_that_loses_the_key_on_the_primary_key_answers_with_the_winner(
    team: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The write lock makes the in-transaction lookup see every committed key; the
    # primary key is what holds if it ever did not. Make the lookup miss once.
    winner = team.send("alice", "bob", "hi", idempotency_key=KEY)
    real_find = idempotency.find_key
    misses = iter([True])

    def find_key(*args: Any) -> idempotency.UsedKey | None:
        return None if next(misses, False) else real_find(*args)

    monkeypatch.setattr(message_ops, "find_key", find_key)
    assert team.send("alice", "bob", "hi", idempotency_key=KEY) == winner
    assert count(team.store, messages) == 1
    assert sent_events(team.store) == 1
