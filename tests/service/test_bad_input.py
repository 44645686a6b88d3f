"""Bad input gets a specific error with a reason and changes nothing at all.

Every test takes a snapshot of every table (rows, not counts) before the bad call and
compares after; the clock moves first, so even a stray ``last_seen_at`` update would show.

The tests marked ``unchanged`` share one small world per dialect (:func:`world`), set up once
(:class:`~tests.support.pristine.Pristine`): each test gets it only when every row is as the
setup left it, and with the clock at the same time; one that changed a row fails, and the
world is set up anew for the next. Every other test gets a fresh store of its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from relaybus.bounds import MAX_ID, MAX_LIMIT, MAX_META_DEPTH
from relaybus.errors import Conflict, Forbidden, InvalidInput, NotFound, RelayError, TooLarge
from relaybus.service import Service
from relaybus.store import Store
from tests.conftest import DIALECTS, Clock, open_test_store, snapshot_rows
from tests.support.pristine import Pristine

if TYPE_CHECKING:
    from tests.conftest import Snapshot

LIMIT = 64 * 1024  # Settings.max_body_bytes default


@dataclass
class World:
    store: Store
    clock: Clock
    now: float


@contextlib.contextmanager
def world(dialect: str, folder: Path) -> Iterator[World]:
    """alice, bob and carol, a message and its reply, and an open task (id 1), with the
    clock 10 s past the setup."""
    clock = Clock()
    folder.mkdir()
    with open_test_store(dialect, folder, clock) as store:
        service = Service(store)
        service.register("alice", tags=["backend"], capabilities=["review"], channels=["dev"])
        service.register("bob", tags=["frontend"], label="UI writer")
        service.register("carol")
        root = service.send("alice", "bob", "root")
        service.send("bob", None, "reply", reply_to=root.id)
        service.send("carol", "cap:review", "review please", claimable=True)
        yield World(store, clock, clock.now + 10)


def _back_to_setup_time(shared: World) -> None:
    shared.clock.now = shared.now


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine[World]]:
    folder = tmp_path_factory.mktemp("worlds")
    made = iter(range(1, 1_000_000))
    kept = Pristine(
        lambda dialect: world(dialect, folder / f"{dialect}-{next(made)}"),
        lambda shared: snapshot_rows(shared.store),
        _back_to_setup_time,
    )
    yield kept
    kept.close()


@pytest.fixture(params=DIALECTS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, worlds: Pristine[World]
) -> Iterator[Store]:
    """For a test that uses ``unchanged``, the shared :func:`world`'s store, which it must
    leave as it found it; a fresh store with a new clock otherwise."""
    if "unchanged" in request.fixturenames:
        with worlds.kept(request.param) as shared:
            yield shared.store
        return
    with open_test_store(request.param, tmp_path, Clock()) as opened:
        yield opened


@pytest.fixture
def clock(store: Store) -> Clock:
    """The clock of the test's store."""
    assert isinstance(store.clock, Clock)
    return store.clock


@pytest.fixture
def unchanged() -> None:
    """The test runs on the small shared :func:`world` and must leave every row of it as the
    setup did (checked by :func:`store`)."""


def error_of(call: Callable[[], object]) -> RelayError:
    with pytest.raises(RelayError) as caught:
        call()
    return caught.value


@pytest.mark.usefixtures("unchanged")
def test_an_oversized_body_is_too_large(service: Service) -> None:
    error = error_of(lambda: service.send("alice", "bob", "x" * (LIMIT + 1)))
    assert isinstance(error, TooLarge)
    assert error.details["limit"] == LIMIT
    assert error.exit_code == 2


@pytest.mark.usefixtures("unchanged")
def test_the_body_limit_counts_utf8_bytes_not_characters(service: Service) -> None:
    body = "é" * (LIMIT // 2 + 1)  # fewer characters than the limit, more bytes
    assert isinstance(error_of(lambda: service.send("alice", "bob", body)), TooLarge)


def test_a_body_of_exactly_the_limit_is_accepted(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    assert len(service.send("alice", "bob", "x" * LIMIT).body) == LIMIT


@pytest.mark.usefixtures("unchanged")
def test_an_unknown_agent_id_is_not_found_and_suggests_close_ids(service: Service) -> None:
    error = error_of(lambda: service.send("alice", "bobb", "hi"))
    assert isinstance(error, NotFound)
    assert "'bobb'" in error.message
    assert "did you mean 'bob'" in error.message
    assert error.details["target"] == "bobb"
    assert error.exit_code == 2


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("target", "suggestion"),
    [
        ("tag:frontned", "'tag:frontend'"),
        ("cap:reveiw", "'cap:review'"),
        ("label:UI writr", "'UI writer'"),
        ("tag:nothing-like-it", None),
    ],
)
def test_a_target_matching_nobody_is_not_found(
    service: Service, target: str, suggestion: str | None
) -> None:
    error = error_of(lambda: service.send("alice", target, "hi"))
    assert isinstance(error, NotFound)
    assert repr(target) in error.message
    if suggestion is None:
        assert "did you mean" not in error.message
    else:
        assert f"did you mean {suggestion}" in error.message


def test_broadcast_with_nobody_else_registered_is_not_found(service: Service) -> None:
    service.register("alice")
    with pytest.raises(NotFound, match="broadcast"):
        service.send("alice", "broadcast", "anyone?")
    assert service.events(kinds=["message.sent"]) == []


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "target", ["foo:bar", "tag:", "cap:", "label:", "", "   ", "a b", "tag:a b", "-x", "é"]
)
def test_a_malformed_target_expression_is_invalid_input(service: Service, target: str) -> None:
    error = error_of(lambda: service.send("alice", target, "hi"))
    assert isinstance(error, InvalidInput)
    assert "tag:NAME" in error.message  # the message lists the valid forms


@pytest.mark.usefixtures("unchanged")
def test_a_send_with_a_stale_epoch_is_a_conflict(service: Service) -> None:
    # alice is at epoch 1, so a call carrying epoch 0 comes from a fenced-off instance
    # (re-registering here would change the snapshot; the agents tests cover that path).
    error = error_of(lambda: service.send("alice", "bob", "hi", epoch=0))
    assert isinstance(error, Conflict)
    assert error.details["current_epoch"] == 1


@pytest.mark.usefixtures("unchanged")
def test_an_invalid_task_status_transition_is_a_conflict(service: Service) -> None:
    # The open task may not jump to in_progress without a claim.
    error = error_of(lambda: service.update_task(1, None, status="in_progress"))
    assert isinstance(error, Conflict)
    assert error.details == {"task": 1, "status": "open", "requested": "in_progress"}


def test_a_finished_task_cannot_change(service: Service, snapshot: Callable[[], Snapshot]) -> None:
    service.register("alice", capabilities=["review"])
    service.register("bob")
    task_id = service.send("bob", "alice", "do it", claimable=True).task_id
    assert task_id is not None
    service.claim(task_id, "alice")
    service.update_task(task_id, "alice", status="done", result="ok")
    before = snapshot()
    for status in ("in_progress", "failed", "done"):
        with pytest.raises(Conflict, match="finished"):
            service.update_task(task_id, "alice", status=status)
    with pytest.raises(Conflict):
        service.claim(task_id, "alice")
    assert snapshot() == before


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("status", ["started", "DONE", "", "open", "claimed"])
def test_an_invalid_task_status_string_is_invalid_input(service: Service, status: str) -> None:
    error = error_of(lambda: service.update_task(1, "carol", status=status))
    assert isinstance(error, InvalidInput)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("progress", [150, 101, -1])
def test_progress_outside_0_to_100_is_invalid_input(service: Service, progress: int) -> None:
    error = error_of(lambda: service.update_task(1, None, progress=progress))
    assert isinstance(error, InvalidInput)


@pytest.mark.usefixtures("unchanged")
def test_an_update_with_nothing_to_change_is_invalid_input(service: Service) -> None:
    assert isinstance(error_of(lambda: service.update_task(1, None)), InvalidInput)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "meta",
    [
        [1, 2],
        "text",
        42,
        {"when": object()},
        {1: "non-text key"},
        {"x": float("nan")},
        {"x": [float("inf")]},
        {"x": "nul\x00"},
    ],
    ids=["list", "str", "int", "object-value", "int-key", "nan", "inf", "nul"],
)
def test_meta_that_is_not_a_json_object_is_invalid_input(service: Service, meta: Any) -> None:
    error = error_of(lambda: service.send("alice", "bob", "hi", meta=meta))
    assert isinstance(error, InvalidInput)
    assert "meta" in error.message


@pytest.mark.usefixtures("unchanged")
def test_oversized_meta_is_too_large(service: Service) -> None:
    meta = {"blob": "x" * LIMIT}
    assert isinstance(error_of(lambda: service.send("alice", "bob", "hi", meta=meta)), TooLarge)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.send("alice", "bob", "nul \x00 inside"),
        lambda s: s.send("alice", "bob", "lone \ud800 surrogate"),
        lambda s: s.send("alice", "bob", "hi", subject="nul\x00"),
        lambda s: s.send("alice", "bob", "hi", subject="s" * 1001),
        lambda s: s.send("alice", "bob", 42),
        lambda s: s.send("alice", "bob", "hi", priority="asap"),
        lambda s: s.send("alice", "bob", "hi", channel="not a channel"),
        lambda s: s.send("alice", None, "to nobody"),
        lambda s: s.register("dave", label="x" * 201),
        lambda s: s.register("dave", label="nul\x00"),
        lambda s: s.register("dave", meta={"k": float("nan")}),
        lambda s: s.update_agent("bob", label=""),
        lambda s: s.update_agent("bob", meta={"k": {1, 2}}),
        lambda s: s.update_task(1, None, note="nul\x00"),
        lambda s: s.inbox("bob", limit=0),
        lambda s: s.inbox("bob", limit=1001),
        lambda s: s.mark_read("bob"),
        lambda s: s.mark_read("bob", ids=[1], up_to=1),
        lambda s: s.events(limit=0),
        lambda s: s.claim(1, "alice", lease=0),
        lambda s: s.prune(message_days=-1),
    ],
    ids=[
        "body-nul",
        "body-surrogate",
        "subject-nul",
        "subject-long",
        "body-not-text",
        "priority",
        "channel",
        "no-target",
        "label-long",
        "label-nul",
        "register-meta-nan",
        "label-empty",
        "update-meta-set",
        "note-nul",
        "limit-0",
        "limit-1001",
        "mark-read-neither",
        "mark-read-both",
        "events-limit",
        "lease-0",
        "prune-negative",
    ],
)
def test_other_bad_input_is_invalid_input(
    service: Service, call: Callable[[Service], object]
) -> None:
    error = error_of(lambda: call(service))
    assert isinstance(error, InvalidInput)
    assert error.exit_code == 2


@pytest.mark.usefixtures("unchanged")
def test_a_reply_to_a_missing_message_is_not_found(service: Service) -> None:
    error = error_of(lambda: service.send("alice", None, "hi", reply_to=999))
    assert isinstance(error, NotFound)
    assert error.details == {"message_id": 999}
    error = error_of(lambda: service.send("alice", "bob", "hi", reply_to=999))
    assert isinstance(error, NotFound)


@pytest.mark.usefixtures("unchanged")
def test_an_unknown_task_is_not_found(service: Service) -> None:
    for call in (
        lambda: service.claim(999, "alice"),
        lambda: service.update_task(999, "alice", progress=1),
        lambda: service.task_history(999),
        lambda: service.get_task(999),
    ):
        assert isinstance(error_of(call), NotFound)


@pytest.mark.usefixtures("unchanged")
def test_a_recipient_updating_a_task_it_does_not_hold_is_forbidden(service: Service) -> None:
    error = error_of(lambda: service.update_task(1, "alice", status="done"))
    assert isinstance(error, Forbidden)
    assert error.exit_code == 1


@pytest.mark.usefixtures("unchanged")
def test_a_stranger_updating_a_task_it_may_not_see_is_not_found(service: Service) -> None:
    error = error_of(lambda: service.update_task(1, "bob", status="done"))
    assert isinstance(error, NotFound)
    assert error.message == "no task 1"


@pytest.mark.parametrize(
    "fields",
    [{"host": "h" * 256}, {"instance_id": "i" * 129}],
    ids=["host", "instance_id"],
)
def test_over_long_registration_fields_are_refused_alike_on_both_dialects(
    service: Service, fields: dict[str, str]
) -> None:
    with pytest.raises(InvalidInput):
        service.register("alice", **fields)  # type: ignore[arg-type]
    assert service.list_agents() == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"host": "bad\udc80host"}, "host has an unpaired surrogate"),
        ({"cwd": "/tmp/\udc80"}, "cwd has an unpaired surrogate"),
        ({"tool": "t\udc80"}, "tool has an unpaired surrogate"),
        ({"instance_id": "i\udc80"}, "instance id has an unpaired surrogate"),
        ({"pid": 2**31}, "a pid is between 1 and"),
        ({"pid": 0}, "a pid is between 1 and"),
        ({"workspace": "w" * 65}, "at most 64"),
        ({"workspace": "bad space"}, "invalid workspace"),
    ],
)
def test_a_registration_without_an_id_checks_everything_before_deriving_one(
    service: Service, snapshot: Callable[[], Snapshot], kwargs: dict[str, Any], words: str
) -> None:
    before = snapshot()
    with pytest.raises(InvalidInput, match=words):
        service.register(**kwargs)
    assert snapshot() == before


# -- ids, cursors, limits and waits out of range ----------------------------------------------
# Past 2^63-1 no database holds the number (the drivers raise OverflowError); the
# relay's bound is 2^53-1 (bounds.MAX_ID), the same on every path.

HUGE = 2**63
OUT_OF_RANGE_IDS = [HUGE, MAX_ID + 1, 0, -1]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", OUT_OF_RANGE_IDS)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, n: s.get_message(n),
        lambda s, n: s.thread(n),
        lambda s, n: s.deliveries(n),
        lambda s, n: s.wait_deliveries(n, "read", 0),
        lambda s, n: s.send("alice", None, "hi", reply_to=n),
        lambda s, n: s.send("alice", "bob", "hi", reply_to=n),
        lambda s, n: s.send_many("alice", [{"to": "bob", "body": "hi", "reply_to": n}]),
        lambda s, n: s.get_task(n),
        lambda s, n: s.task_history(n),
        lambda s, n: s.claim(n, "alice"),
        lambda s, n: s.renew(n, "alice"),
        lambda s, n: s.release(n, "alice"),
        lambda s, n: s.update_task(n, "alice", progress=1),
        lambda s, n: s.mark_read("bob", ids=[n]),
        lambda s, n: s.mark_delivered("bob", [n], via="pty"),
    ],
    ids=[
        "get_message",
        "thread",
        "deliveries",
        "wait_deliveries",
        "reply",
        "reply-to-target",
        "batch-reply",
        "get_task",
        "task_history",
        "claim",
        "renew",
        "release",
        "update_task",
        "mark_read",
        "mark_delivered",
    ],
)
def test_an_id_out_of_range_is_invalid_input_naming_the_bounds(
    service: Service, call: Callable[[Service, int], object], bad: int
) -> None:
    error = error_of(lambda: call(service, bad))
    assert isinstance(error, InvalidInput)
    assert f"between 1 and {MAX_ID}, not {bad}" in error.message
    assert error.exit_code == 2


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", [HUGE, MAX_ID + 1, -1])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, n: s.inbox("bob", since=n),
        lambda s, n: s.wait("bob", 0, since=n),
        lambda s, n: s.events(since=n),
        lambda s, n: s.wait_events(0, since=n),
        lambda s, n: s.log_tail(n),
        lambda s, n: s.mark_read("bob", up_to=n),
        lambda s, n: s.send("alice", "bob", "hi", epoch=n),
        lambda s, n: s.heartbeat("alice", epoch=n),
    ],
    ids=["inbox", "wait", "events", "wait_events", "log_tail", "up_to", "epoch", "heartbeat"],
)
def test_a_cursor_or_epoch_out_of_range_is_invalid_input(
    service: Service, call: Callable[[Service, int], object], bad: int
) -> None:
    error = error_of(lambda: call(service, bad))
    assert isinstance(error, InvalidInput)
    assert f"between 0 and {MAX_ID}, not {bad}" in error.message


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 100_000, HUGE])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, n: s.list_tasks(limit=n),
        lambda s, n: s.inbox("bob", limit=n),
        lambda s, n: s.events(limit=n),
    ],
    ids=["tasks", "inbox", "events"],
)
def test_every_listing_has_the_same_limit(
    service: Service, call: Callable[[Service, int], object], limit: int
) -> None:
    error = error_of(lambda: call(service, limit))
    assert isinstance(error, InvalidInput)
    assert f"limit must be between 1 and {MAX_LIMIT}" in error.message


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.wait("bob", math.nan),
        lambda s: s.wait_events(math.nan),
        lambda s: s.wait_deliveries(1, "read", math.nan),
        lambda s: s.wait("bob", "soon"),
    ],
    ids=["inbox", "events", "deliveries", "text"],
)
def test_a_wait_that_is_not_a_number_is_invalid_input(
    service: Service, call: Callable[[Service], object]
) -> None:
    assert isinstance(error_of(lambda: call(service)), InvalidInput)


def test_ids_at_the_bounds_are_looked_up(service: Service) -> None:
    service.register("alice")
    with pytest.raises(NotFound):
        service.get_message(MAX_ID)
    with pytest.raises(NotFound):
        service.get_task(MAX_ID)
    assert service.events(since=MAX_ID) == []
    assert service.list_tasks(limit=MAX_LIMIT) == []


# -- meta nested too deep -----------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """``{"a": {"a": ... leaf}}``, ``depth`` objects deep (built without recursion)."""
    value: Any = leaf
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("depth", [MAX_META_DEPTH + 1, 5000])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, m: s.send("alice", "bob", "hi", meta=m),
        lambda s, m: s.send_many("alice", [{"to": "bob", "body": "hi", "meta": m}]),
        lambda s, m: s.register("dave", meta=m),
        lambda s, m: s.update_agent("bob", meta=m),
    ],
    ids=["send", "batch", "register", "update"],
)
def test_meta_nested_too_deep_is_invalid_input_naming_the_limit(
    service: Service, call: Callable[[Service, Any], object], depth: int
) -> None:
    error = error_of(lambda: call(service, nested(depth)))
    assert isinstance(error, InvalidInput)
    assert f"meta is nested more than {MAX_META_DEPTH} levels deep" in error.message


@pytest.mark.usefixtures("unchanged")
def test_a_meta_list_nested_too_deep_is_invalid_input(service: Service) -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    error = error_of(lambda: service.send("alice", "bob", "hi", meta={"list": value}))
    assert isinstance(error, InvalidInput)


def test_meta_at_the_depth_limit_is_stored(service: Service) -> None:
    service.register("alice")
    service.register("bob")
    meta = nested(MAX_META_DEPTH)
    assert service.send("alice", "bob", "hi", meta=meta).meta == meta


# -- unknown agents -----------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.inbox("bobb"),
        lambda s: s.inbox("bobb", unread_only=False, newest_first=False),
        lambda s: s.wait("bobb", 30),
        lambda s: s.unread_count("bobb"),
        lambda s: s.mark_read("bobb", up_to=1),
        lambda s: s.mark_delivered("bobb", [1], via="pty"),
    ],
    ids=["inbox", "inbox-all", "wait", "count", "mark_read", "mark_delivered"],
)
def test_an_unknown_agents_inbox_is_not_found_with_close_ids(
    service: Service, call: Callable[[Service], object]
) -> None:
    # A wait on a typo answers at once instead of waiting 30 s for mail that cannot come.
    error = error_of(lambda: call(service))
    assert isinstance(error, NotFound)
    assert "no agent 'bobb'" in error.message
    assert "did you mean 'bob'" in error.message
    assert error.details["agent"] == "bobb"


def test_a_known_agent_with_an_empty_inbox_reads_nothing(service: Service) -> None:
    service.register("alice")
    assert service.inbox("alice") == []
    assert service.unread_count("alice") == 0
    assert service.wait("alice", 0) == []


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.prune(message_days=math.nan),
        lambda s: s.prune(agent_days="soon"),
        lambda s: s.register("dave", pid=2.5),
        lambda s: s.register("dave", pid=HUGE),
        lambda s: s.claim(1, "bob", lease=HUGE),
        lambda s: s.claim(1, "bob", lease=math.nan),
        lambda s: s.update_task(1, None, progress=HUGE),
    ],
    ids=["prune-nan", "prune-text", "pid-float", "pid-huge", "lease-huge", "lease-nan", "progress"],
)
def test_other_numbers_out_of_range_are_invalid_input(
    service: Service, call: Callable[[Service], object]
) -> None:
    assert isinstance(error_of(lambda: call(service)), InvalidInput)


@pytest.mark.usefixtures("unchanged")
def test_numbers_past_the_floats_are_no_overflow_error(service: Service) -> None:
    # 2**2000 seconds or days is "for ever", never an OverflowError.
    assert isinstance(error_of(lambda: service.wait("bobb", 2**2000)), NotFound)
    assert service.wait("bob", 2**2000)  # bob has unread mail: no wait at all
