"""Integrations: their tokens, events with dedupe keys, tasks raised from outside, rate
limits, and the callback outbox (both dialects, the test's clock)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from relaybus.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from relaybus.models import CallbackStatus, IngestOutcome, TaskStatus
from relaybus.service import Service, hash_token
from relaybus.service.callbacks import backoff

if TYPE_CHECKING:
    from tests.conftest import Clock, Snapshot


@pytest.fixture
def ops(service: Service) -> Service:
    """Two on-call agents and an alerting integration that may reach them."""
    service.register("ops1", capabilities=["ops"], channels=["alerts"])
    service.register("ops2", capabilities=["ops"], channels=["alerts"])
    service.add_integration(
        "grafana",
        targets=["cap:ops"],
        channels=["alerts"],
        callback_url="http://127.0.0.1:9/callback",
    )
    return service


def unread(service: Service, agent_id: str) -> int:
    return service.unread_count(agent_id)


def callbacks(service: Service) -> list[tuple[str, str]]:
    """(event, task status in the payload) of grafana's callbacks, oldest first."""
    found = reversed(service.callback_deliveries("grafana"))
    return [(c.event, c.payload["task"]["status"]) for c in found]


# -- the integrations themselves ----------------------------------------------------------


def test_an_integration_gets_a_token_shown_once_that_authenticates_as_it(
    service: Service,
) -> None:
    created = service.add_integration("ci", scopes=["tasks:create"], targets=["cap:ops"])

    assert created.token.startswith("rbi_") and created.secret is None
    credential = service.authenticate(hash_token(created.token))
    assert credential is not None
    assert (credential.integration, credential.agent_id) == ("ci", None)
    assert credential.scopes == ("tasks:create",)
    assert service.get_integration("ci").targets == ["cap:ops"]
    assert [i.name for i in service.list_integrations()] == ["ci"]


def test_a_callback_url_brings_a_signing_secret(service: Service) -> None:
    created = service.add_integration("ci", callback_url="https://ci.example/hook")

    assert created.secret is not None and created.secret.startswith("whsec_")
    assert service.integration_secret("ci") == created.secret


def test_rotating_a_token_stops_the_old_one_and_revoking_stops_every_one(
    service: Service,
) -> None:
    first = service.add_integration("ci", callback_url="https://ci.example/hook")
    second = service.rotate_integration("ci")

    assert service.authenticate(hash_token(first.token)) is None
    assert service.authenticate(hash_token(second.token)) is not None
    assert second.secret is None  # the secret stays unless asked
    assert service.integration_secret("ci") == first.secret
    assert service.rotate_integration("ci", secret=True).secret != first.secret

    service.revoke_integration("ci")
    assert service.get_integration("ci").status == "revoked"
    assert service.authenticate(hash_token(second.token)) is None


def test_a_duplicate_name_is_a_conflict_and_bad_settings_are_refused(
    service: Service, snapshot: Callable[[], Snapshot]
) -> None:
    service.add_integration("ci")
    before = snapshot()

    with pytest.raises(Conflict):
        service.add_integration("ci")
    for bad in (
        {"scopes": ["tasks:delete"]},
        {"targets": ["nope:x"]},
        {"channels": ["a b"]},
        {"callback_url": "ftp://ci.example/x"},
        {"callback_url": "http://169.254.169.254/latest/meta-data"},
        {"callback_url": "http://[fe80::1]/x"},
        {"callback_url": "http://metadata.google.internal/x"},
        {"callback_url": "http://user:pw@ci.example/x"},
        {"rate_limit": 0},
    ):
        with pytest.raises(InvalidInput):
            service.add_integration("other", **bad)
    for name in ("a/b", "events", "-x"):
        with pytest.raises(InvalidInput):
            service.add_integration(name)
    assert snapshot() == before


def test_declared_integrations_take_the_seeds_keys_and_update_on_a_second_start(
    service: Service,
) -> None:
    declared: list[dict[str, object]] = [
        {
            "name": "ops-alerts",
            "token": "ops-secret",
            "scopes": ["tasks:create"],
            "targets": ["cap:ops"],
            "channels": ["alerts"],
            "callbackUrl": "https://ops.example/agent-relay/callback",
        }
    ]
    assert service.declare_integrations(declared) == ["ops-alerts"]
    credential = service.authenticate(hash_token("ops-secret"))
    assert credential is not None and credential.integration == "ops-alerts"
    secret = service.integration_secret("ops-alerts")
    assert secret is not None

    declared[0].update(token="new-secret", rateLimitPerMinute=10)
    service.declare_integrations(declared)
    assert service.authenticate(hash_token("ops-secret")) is None
    assert service.authenticate(hash_token("new-secret")) is not None
    assert service.get_integration("ops-alerts").rate_limit == 10
    assert service.integration_secret("ops-alerts") == secret  # kept across starts

    with pytest.raises(InvalidInput, match="unknown key 'tokn'"):
        service.declare_integrations([{"name": "x", "tokn": "y"}])


# -- events --------------------------------------------------------------------------------


def test_an_event_opens_a_task_offered_to_the_target_with_its_meta_and_link(
    ops: Service,
) -> None:
    got = ops.ingest_event(
        "grafana",
        title="prod-api 5xx rate high",
        body="5xx rate is above 8% for 5 minutes",
        source="grafana",
        external_url="https://grafana.example/d/prod-api",
        metadata={"service": "prod-api", "value": 0.084},
        dedupe_key="prod-api-5xx",
        priority="high",
    )

    assert got.outcome is IngestOutcome.CREATED and got.task is not None
    task = got.task
    assert (task.target, task.channel) == ("cap:ops", "alerts")  # the allowed defaults
    assert (task.integration, task.source, task.creator) == (
        "grafana",
        "grafana",
        "integration:grafana",
    )
    assert task.external_url == "https://grafana.example/d/prod-api"
    assert task.meta == {"service": "prod-api", "value": 0.084}
    assert (task.dedupe_key, task.occurrence_count, task.priority) == ("prod-api-5xx", 1, "high")
    message = ops.get_message(got.message_id or 0)
    assert message.sender == "integration:grafana" and message.task_id == task.id
    assert message.recipients == ["ops1", "ops2"]
    assert "https://grafana.example/d/prod-api" in message.body
    assert ops.get_task(task.id) == task  # shown the same everywhere


def test_a_repeat_counts_an_occurrence_and_interrupts_nobody_again(
    ops: Service, clock: Clock
) -> None:
    first = ops.ingest_event("grafana", title="disk full", dedupe_key="disk")
    inbox = unread(ops, "ops1")
    clock.advance(10)

    again = ops.ingest_event("grafana", title="disk full", dedupe_key="disk")

    assert again.outcome is IngestOutcome.REPEATED and again.message_id is None
    assert again.task is not None and first.task is not None
    assert again.task.id == first.task.id
    assert again.task.occurrence_count == 2
    assert again.task.last_seen_at is not None
    assert unread(ops, "ops1") == inbox
    assert [e.kind for e in ops.task_history(first.task.id)] == ["created", "repeated"]


def test_repeats_tell_the_holder_at_most_once_per_notice_interval(
    ops: Service, clock: Clock
) -> None:
    got = ops.ingest_event("grafana", title="disk full", dedupe_key="disk")
    assert got.task is not None
    ops.claim(got.task.id, "ops1")
    ops.mark_read("ops1", up_to=10**6)
    notice = ops.settings.repeat_notice_seconds

    clock.advance(notice + 1)
    told = ops.ingest_event("grafana", title="disk full", dedupe_key="disk")
    clock.advance(1)
    quiet = ops.ingest_event("grafana", title="disk full", dedupe_key="disk")

    assert told.message_id is not None and quiet.message_id is None
    message = ops.get_message(told.message_id)
    assert message.recipients == ["ops1"]  # the holder only, not ops2
    assert message.reply_to == got.message_id  # in the task's thread
    assert message.body == "Seen again (2 times in all): disk full"
    assert unread(ops, "ops1") == 1 and unread(ops, "ops2") == 1  # ops2: the first offer


def test_resolved_closes_the_task_and_a_later_event_opens_a_new_one(ops: Service) -> None:
    first = ops.ingest_event("grafana", title="5xx", dedupe_key="5xx")
    assert first.task is not None

    resolved = ops.ingest_event("grafana", dedupe_key="5xx", status="resolved")
    nothing = ops.ingest_event("grafana", dedupe_key="5xx", status="resolved")
    reopened = ops.ingest_event("grafana", title="5xx", dedupe_key="5xx")

    assert resolved.outcome is IngestOutcome.RESOLVED and resolved.task is not None
    assert resolved.task.status is TaskStatus.DONE
    assert resolved.task.result == "resolved by integration:grafana"
    assert (nothing.outcome, nothing.task) == (IngestOutcome.IGNORED, None)
    assert reopened.outcome is IngestOutcome.CREATED and reopened.task is not None
    assert reopened.task.id != first.task.id


def test_two_integrations_using_one_dedupe_key_raise_two_tasks(ops: Service) -> None:
    ops.add_integration("prometheus", targets=["cap:ops"])

    a = ops.ingest_event("grafana", title="cpu", dedupe_key="cpu")
    b = ops.ingest_event("prometheus", title="cpu", dedupe_key="cpu")

    assert a.task is not None and b.task is not None and a.task.id != b.task.id


def test_an_integration_does_only_what_its_scopes_targets_and_channels_allow(
    ops: Service, snapshot: Callable[[], Snapshot]
) -> None:
    ops.add_integration("reader", scopes=["tasks:read"], targets=["cap:ops"])
    before = snapshot()

    with pytest.raises(Forbidden, match="lacks the scope 'tasks:create'"):
        ops.ingest_event("reader", title="x")
    with pytest.raises(Forbidden, match="may not address 'broadcast'"):
        ops.ingest_event("grafana", title="x", target="broadcast")
    with pytest.raises(Forbidden, match="may not post to channel 'general'"):
        ops.ingest_event("grafana", title="x", channel="general")
    with pytest.raises(NotFound):
        ops.ingest_event("nobody", title="x")
    ops.revoke_integration("reader")
    with pytest.raises(Forbidden, match="revoked"):
        ops.ingest_event("reader", title="x")
    ops.rotate_integration("reader")  # back, still without the scope
    with pytest.raises(Forbidden, match="scope"):
        ops.ingest_event("reader", title="x")
    assert {
        k: v for k, v in snapshot().items() if k not in ("tokens", "integrations", "events")
    } == {k: v for k, v in before.items() if k not in ("tokens", "integrations", "events")}


def test_bad_events_are_refused_and_change_nothing(
    ops: Service, snapshot: Callable[[], Snapshot]
) -> None:
    ops.ingest_event("grafana", title="warm up")  # the rate counter row moves on each try
    before = snapshot()

    for bad in (
        {"title": None},
        {"title": " "},
        {"title": "x", "status": "closed"},
        {"status": "resolved"},
        {"title": "x", "external_url": "javascript:alert(1)"},
        {"title": "x", "dedupe_key": "a\nb"},
        {"title": "x", "dedupe_key": "k" * 256},
        {"title": "x", "metadata": {"k": "\x00"}},
        {"title": "x", "priority": "asap"},
    ):
        with pytest.raises(InvalidInput):
            ops.ingest_event("grafana", **bad)
    assert snapshot() == before


def test_the_rate_limit_refuses_with_retry_after_until_the_next_minute(
    service: Service, clock: Clock
) -> None:
    service.register("ops1", capabilities=["ops"])
    service.add_integration("noisy", targets=["cap:ops"], rate_limit=3)
    clock.now = 60 * 1_000_000 + 10.0  # 10 s into a minute

    for n in range(3):
        service.ingest_event("noisy", title=f"alert {n}")
    with pytest.raises(RateLimited) as refused:
        service.ingest_event("noisy", title="one too many")

    assert refused.value.retry_after == pytest.approx(50.0)
    clock.advance(50)
    assert service.ingest_event("noisy", title="next minute").outcome is IngestOutcome.CREATED


def test_eight_concurrent_posters_of_one_key_raise_one_task_counting_every_post(
    ops: Service,
) -> None:
    posters, outcomes, errors = 8, [], []
    start = threading.Barrier(posters)

    def post() -> None:
        try:
            start.wait(timeout=30)
            got = ops.ingest_event("grafana", title="storm", dedupe_key="storm")
            outcomes.append((got.outcome, got.task.id if got.task else None))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(o for o, _ in outcomes) == ["created"] + ["repeated"] * (posters - 1)
    assert len({task_id for _, task_id in outcomes}) == 1
    tasks = [t for t in ops.list_tasks() if t.dedupe_key == "storm"]
    assert len(tasks) == 1 and tasks[0].occurrence_count == posters


def test_an_integration_with_messages_send_sends_as_itself_within_its_allow_list(
    ops: Service,
) -> None:
    ops.add_integration("bot", scopes=["messages:send"], targets=["cap:ops", "ops1"])

    first = ops.send_from_integration("bot", None, "deploy starts at 14:00")
    direct = ops.send_from_integration("bot", "ops1", "you are on call", claimable=True)
    to_all = ops.send("ops1", None, "on it", reply_to=first.id)

    assert (first.sender, first.to) == ("integration:bot", "cap:ops")
    assert first.recipients == ["ops1", "ops2"]
    assert direct.task_id is not None
    assert ops.get_task(direct.task_id).integration == "bot"
    # A reply to an integration (no inbox) goes to the audience of its message.
    assert (to_all.to, to_all.recipients) == ("cap:ops", ["ops2"])
    with pytest.raises(InvalidInput, match="which has no inbox"):
        ops.send("ops1", None, "ack", reply_to=direct.id)
    with pytest.raises(Forbidden, match="may not address 'broadcast'"):
        ops.send_from_integration("bot", "broadcast", "hi all")
    with pytest.raises(Forbidden, match="lacks the scope 'messages:send'"):
        ops.send_from_integration("grafana", None, "hi")


# -- tasks without a sending agent ------------------------------------------------------


def test_a_task_opened_by_an_agent_or_the_operator_keeps_its_meta_and_link(
    ops: Service,
) -> None:
    mine = ops.open_task(
        title="Review PR 42",
        target="ops2",
        creator="ops1",
        meta={"pr": 42},
        external_url="https://github.example/pr/42",
    )
    theirs = ops.open_task(title="Rotate the keys", target="cap:ops")

    assert (mine.creator, mine.meta, mine.external_url) == (
        "ops1",
        {"pr": 42},
        "https://github.example/pr/42",
    )
    assert theirs.creator == "relaybus" and theirs.status is TaskStatus.OPEN
    assert ops.get_message(theirs.message_id or 0).recipients == ["ops1", "ops2"]
    assert [t.id for t in ops.list_tasks(viewer="ops2")] == [theirs.id, mine.id]


def test_an_active_dedupe_key_makes_a_second_task_a_conflict(ops: Service) -> None:
    first = ops.open_task(title="flaky test", target="cap:ops", dedupe_key="flaky")

    with pytest.raises(Conflict, match=f"task {first.id}"):
        ops.open_task(title="flaky test", target="cap:ops", dedupe_key="flaky")
    ops.update_task(first.id, None, status="canceled")
    assert ops.open_task(title="flaky test", target="cap:ops", dedupe_key="flaky").id != first.id


# -- the callback outbox ------------------------------------------------------------------


def test_every_change_of_an_integrations_task_queues_a_callback_with_the_task_then(
    ops: Service,
) -> None:
    got = ops.ingest_event("grafana", title="5xx", dedupe_key="5xx")
    assert got.task is not None
    task_id = got.task.id
    ops.ingest_event("grafana", title="5xx", dedupe_key="5xx")
    ops.claim(task_id, "ops1")
    ops.update_task(task_id, "ops1", progress=50, note="looking")
    ops.update_task(task_id, "ops1", progress=60)  # not a status change: no callback
    ops.update_task(task_id, "ops1", status="blocked")
    ops.update_task(task_id, "ops1", status="in_progress")
    ops.release(task_id, "ops1")
    ops.claim(task_id, "ops2")
    ops.update_task(task_id, "ops2", status="done", result="rolled back")

    assert callbacks(ops) == [
        ("task.created", "open"),
        ("task.repeated", "open"),
        ("task.claimed", "claimed"),
        ("task.updated", "in_progress"),  # progress on a fresh claim: work has begun
        ("task.updated", "blocked"),
        ("task.updated", "in_progress"),
        ("task.released", "open"),
        ("task.claimed", "claimed"),
        ("task.updated", "done"),
    ]
    last = ops.callback_deliveries("grafana")[0]
    assert last.payload["task"]["result"] == "rolled back"
    assert last.payload["integration"] == "grafana" and last.payload["id"] == last.id


def test_tasks_of_agents_and_of_integrations_without_a_url_queue_nothing(ops: Service) -> None:
    ops.add_integration("quiet", targets=["cap:ops"])
    ops.ingest_event("quiet", title="x")
    ops.open_task(title="y", target="cap:ops", creator="ops1")

    assert ops.callback_deliveries("quiet") == []
    assert ops.next_callback_due() is None


def test_a_claimed_callback_is_held_then_delivered_once(ops: Service, clock: Clock) -> None:
    ops.ingest_event("grafana", title="5xx")
    assert ops.next_callback_due() == clock.now

    claimed = ops.claim_callbacks(runner="a:1", hold=15)
    assert [c.event for c in claimed] == ["task.created"]
    assert ops.claim_callbacks(runner="b:2", hold=15) == []  # held by a:1
    assert ops.next_callback_due() == clock.now + 15

    assert ops.finish_callback(claimed[0], status=204, latency=0.01) is CallbackStatus.DELIVERED
    delivery = ops.callback_deliveries("grafana")[0]
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 204)
    assert [(a.runner, a.status) for a in delivery.attempt_log] == [("a:1", 204)]
    assert ops.next_callback_due() is None


def test_a_sender_that_dies_leaves_its_callback_due_again_after_the_hold(
    ops: Service, clock: Clock
) -> None:
    ops.ingest_event("grafana", title="5xx")
    ops.claim_callbacks(runner="dead:1", hold=15)  # and never finishes

    clock.advance(16)
    again = ops.claim_callbacks(runner="alive:2", hold=15)

    assert [c.attempt for c in again] == [2]
    ops.finish_callback(again[0], status=200, latency=0.02)
    log = ops.callback_deliveries("grafana")[0].attempt_log
    assert [(a.attempt, a.runner, a.status) for a in log] == [
        (1, "dead:1", None),
        (2, "alive:2", 200),
    ]


def test_failures_back_off_then_dead_letter_and_a_replay_sends_again(
    ops: Service, clock: Clock
) -> None:
    ops.ingest_event("grafana", title="5xx")
    attempts = ops.settings.callback_max_attempts
    for n in range(1, attempts + 1):
        claimed = ops.claim_callbacks(runner="a:1", hold=15)
        assert [c.attempt for c in claimed] == [n]
        status = ops.finish_callback(claimed[0], status=503, latency=0.1, error="HTTP 503")
        due = ops.next_callback_due()
        if n < attempts:
            assert status is CallbackStatus.PENDING and due is not None
            base = ops.settings.callback_backoff * 2 ** (n - 1)
            assert base / 2 <= due - clock.now <= base
            clock.now = due
        else:
            assert status is CallbackStatus.DEAD and due is None

    dead = ops.callback_deliveries("grafana", status="dead")
    assert len(dead) == 1 and len(dead[0].attempt_log) == attempts
    replayed = ops.replay_callback("grafana", dead[0].id)
    assert (replayed.status, replayed.attempts) == ("pending", 0)
    with pytest.raises(Conflict, match="pending"):
        ops.replay_callback("grafana", dead[0].id)
    with pytest.raises(NotFound):
        ops.replay_callback("grafana", dead[0].id + 1)
    again = ops.claim_callbacks(runner="a:1", hold=15)
    assert again[0].attempt == 1
    ops.finish_callback(again[0], status=200, latency=0.1)
    assert len(ops.callback_deliveries("grafana")[0].attempt_log) == attempts + 1


def test_a_revoked_integrations_pending_callbacks_are_dead_lettered(ops: Service) -> None:
    ops.ingest_event("grafana", title="5xx")
    ops.revoke_integration("grafana")

    assert ops.claim_callbacks(runner="a:1", hold=15) == []
    delivery = ops.callback_deliveries("grafana")[0]
    assert delivery.status == "dead" and "revoked" in (delivery.last_error or "")


def test_backoff_doubles_from_its_base_with_equal_jitter_and_an_hour_cap() -> None:
    for attempts in range(1, 20):
        full = min(2.0 * 2 ** (attempts - 1), 3600.0)
        assert full / 2 <= backoff(attempts, 2.0) <= full


def test_prune_drops_sent_and_dead_callbacks_past_retention_and_keeps_pending_ones(
    ops: Service, clock: Clock
) -> None:
    ops.ingest_event("grafana", title="old")
    sent = ops.claim_callbacks(runner="a:1", hold=15)
    ops.finish_callback(sent[0], status=200, latency=0.01)
    ops.ingest_event("grafana", title="old, unsent")
    clock.advance(ops.settings.retention_days * 86400 + 1)

    ops.prune()

    left = ops.callback_deliveries("grafana")
    assert [(c.status, c.payload["task"]["title"]) for c in left] == [("pending", "old, unsent")]


def test_names_no_database_stores_are_refused_before_any_lookup(ops: Service) -> None:
    for call in (
        lambda: ops.ingest_event("x\x00", title="t"),
        lambda: ops.get_integration("x\x00"),
        lambda: ops.list_tasks(assignee="a\x00"),
        lambda: ops.list_tasks(viewer="a\x00"),
        lambda: ops.get_task(1, viewer="integration:\x00"),
    ):
        with pytest.raises(InvalidInput):
            call()


def test_replicas_declaring_the_same_integrations_at_once_all_start(service: Service) -> None:
    declared = [
        {"name": f"hook{n}", "token": f"token-{n}", "callbackUrl": "https://ops.example/cb"}
        for n in range(5)
    ]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def declare() -> None:
        try:
            start.wait(timeout=30)
            service.declare_integrations(declared)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=declare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert [i.name for i in service.list_integrations()] == [f"hook{n}" for n in range(5)]
    for n in range(5):
        credential = service.authenticate(hash_token(f"token-{n}"))
        assert credential is not None and credential.integration == f"hook{n}"
