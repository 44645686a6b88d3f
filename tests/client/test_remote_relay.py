"""The SDK over a relay server: the embedded handle tests again, over HTTP, and the same
errors with the same messages as the embedded mode."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The handle behaviour tests of the embedded SDK, collected again here, where the
# ``relay`` fixture below talks to a real server (open mode, then token mode).
from test_client_relay import (
    test_a_message_stream_records_what_it_hands_over_as_delivered,
    test_a_reply_through_a_handle_may_be_redirected,
    test_agent_gives_an_unfenced_handle_to_an_existing_agent,
    test_agents_lists_with_filters,
    test_bad_input_through_the_sdk_raises_the_relay_errors,
    test_claimable_work_through_handles,
    test_events_and_wait_events,
    test_heartbeat_update_and_unregister,
    test_mark_read_by_ids_and_up_to,
    test_prune_through_the_relay,
    test_receipts_through_handles,
    test_register_returns_a_handle_for_this_process,
    test_register_without_an_id_derives_one,
    test_registering_again_fences_off_the_old_handle,
    test_reply_passes_options_through,
    test_results_dump_to_json_with_aware_utc_times,
    test_send_inbox_read_and_reply,
    test_the_handle_cursor_follows_what_it_has_seen,
    test_the_operator_may_update_any_task,
    test_the_same_instance_id_keeps_the_handle_valid,
)

from live import LiveServer, free_port, live_server, server_settings
from relaybus import InvalidInput, Relay, RelayError, StoreError
from relaybus.client import RemoteService
from relaybus.service import Service
from relaybus.store import Store

__all__ = [
    "test_a_reply_through_a_handle_may_be_redirected",
    "test_agent_gives_an_unfenced_handle_to_an_existing_agent",
    "test_agents_lists_with_filters",
    "test_bad_input_through_the_sdk_raises_the_relay_errors",
    "test_claimable_work_through_handles",
    "test_events_and_wait_events",
    "test_heartbeat_update_and_unregister",
    "test_mark_read_by_ids_and_up_to",
    "test_a_message_stream_records_what_it_hands_over_as_delivered",
    "test_prune_through_the_relay",
    "test_receipts_through_handles",
    "test_register_returns_a_handle_for_this_process",
    "test_register_without_an_id_derives_one",
    "test_registering_again_fences_off_the_old_handle",
    "test_reply_passes_options_through",
    "test_results_dump_to_json_with_aware_utc_times",
    "test_send_inbox_read_and_reply",
    "test_the_handle_cursor_follows_what_it_has_seen",
    "test_the_operator_may_update_any_task",
    "test_the_same_instance_id_keeps_the_handle_valid",
]

ADMIN = "rb_test-admin-token"


@pytest.fixture(params=["open", "token"])
def server(request: pytest.FixtureRequest, store: Store) -> Iterator[LiveServer]:
    """A server over the test's store (each dialect, the test's clock): open loopback mode,
    where the client acts with the agents' own tokens, or token mode with the admin token."""
    admin = ADMIN if request.param == "token" else None
    srv = LiveServer(Service(store), server_settings(store.settings, token=admin))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def relay(server: LiveServer) -> Iterator[Relay]:
    with Relay.open(url=server.url, token=server.config.admin_token) as opened:
        yield opened


# -- opening ------------------------------------------------------------------------------
# Once each, with no server: which relay Relay.open picks (a local folder is SQLite's)
# does not depend on the dialect. A test that starts a server runs on each dialect.


def test_relaybus_url_opens_a_remote_relay_without_touching_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAYBUS_URL", "http://127.0.0.1:4850/")
    monkeypatch.setenv("RELAYBUS_TOKEN", "rb_secret")
    with Relay.open() as relay:
        assert isinstance(relay.service, RemoteService)
        assert relay.service.url == "http://127.0.0.1:4850"
        assert relay.service.settings.token == "rb_secret"
    assert not (tmp_path / ".relay").exists()


def test_an_explicit_dir_or_database_beats_relaybus_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_URL", "http://127.0.0.1:4850")
    with Relay.open(dir=tmp_path / "here") as relay:
        assert relay.store.path == tmp_path / "here" / "relay.db"


def test_open_refuses_a_url_together_with_a_database(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        Relay.open(url="http://127.0.0.1:4850", dir=tmp_path)


@pytest.mark.parametrize("url", ["127.0.0.1:4850", "ftp://relay", "http://"])
def test_open_refuses_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a relay server address"):
        Relay.open(url=url)


def test_a_remote_relay_has_no_store_to_hand_out() -> None:
    with Relay.open(url="http://127.0.0.1:4850") as relay:
        with pytest.raises(InvalidInput, match="needs the database.*--database"):
            _ = relay.store


def test_a_server_that_is_not_there_is_a_store_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Relay.open(url=url) as relay:
        with pytest.raises(StoreError, match=f"cannot reach relay server at {url}"):
            relay.agents()


def test_a_server_that_went_away_is_a_store_error(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv, Relay.open(url=srv.url) as relay:
        relay.register("alice")
        srv.stop()
        with pytest.raises(StoreError, match="cannot reach relay server"):
            relay.agents()
        srv.start()
        assert [a.id for a in relay.agents()] == ["alice"]


# -- the same refusals as embedded -----------------------------------------------------------

#: Refusals the server's request schema makes before the service sees the request
#: (an enum or a bound in the OpenAPI document): the same error class, pydantic's
#: wording. Every other refusal has the embedded message word for word.
SCHEMA_WORDED = frozenset(
    {"unknown priority", "unknown task status", "unknown agent status", "unknown status filter"}
    | {"negative retention"}
)

Outcome = tuple[str, str, dict[str, Any]]


def refusals(relay: Relay) -> dict[str, Outcome]:
    """Provoke every kind of refusal an SDK user meets: what each raised."""
    alice = relay.register("alice")
    bob = relay.register("bob", capabilities=["review"])
    old_carol = relay.register("carol")
    carol = relay.register("carol")
    task_id = alice.send("cap:review", "review PR 7", claimable=True).task_id
    assert task_id is not None
    bob.claim(task_id)
    limit = relay.service.settings.max_body_bytes
    attempts: dict[str, Callable[[], object]] = {
        "unknown agent": lambda: alice.send("bobby", "hi"),
        "bad target": lambda: alice.send("what:ever", "hi"),
        "body too large": lambda: alice.send("bob", "x" * (limit + 1)),
        "unknown priority": lambda: alice.send("bob", "hi", priority="whenever"),
        "NUL in body": lambda: alice.send("bob", "nul \x00 inside"),
        "bad channel": lambda: alice.send("bob", "hi", channel="no spaces"),
        "meta not JSON": lambda: alice.send("bob", "hi", meta={"deep": {"k": math.inf}}),
        "reply to nothing": lambda: alice.reply(9999, "hi"),
        "stale epoch": lambda: old_carol.send("bob", "from the past"),
        "task taken": lambda: carol.claim(task_id),
        "not the holder": lambda: carol.update_task(task_id, status="done"),
        "progress over 100": lambda: bob.update_task(task_id, progress=101),
        "status set by claim": lambda: bob.update_task(task_id, status="open"),
        "unknown task status": lambda: bob.update_task(task_id, status="sleeping"),
        "nothing to update": lambda: bob.update_task(task_id),
        "zero lease": lambda: bob.claim(task_id, lease=0),
        "no such task to claim": lambda: bob.claim(9999),
        "renew without holding": lambda: carol.renew(task_id),
        "release without holding": lambda: carol.release(task_id),
        "unknown agent status": lambda: bob.heartbeat("sleeping"),
        "bad tag": lambda: bob.update(tags=["no spaces"]),
        "empty label": lambda: bob.update(label=""),
        "mark read by nothing": lambda: bob.mark_read(),
        "mark read by both": lambda: bob.mark_read([1], up_to=1),
        "bad agent id": lambda: relay.register("not an id"),
        "reserved agent id": lambda: relay.register("broadcast"),
        "no such agent": lambda: relay.agent("alise"),
        "no such message": lambda: relay.message(9999),
        "no such thread": lambda: relay.thread(9999),
        "no such task": lambda: relay.task(9999),
        "no such task history": lambda: relay.task_history(9999),
        "unknown status filter": lambda: relay.tasks(status="sleeping"),
        "negative retention": lambda: relay.prune(message_days=-1),
        "operator with nothing to update": lambda: relay.update_task(task_id),
    }
    found = {}
    for name, attempt in attempts.items():
        with pytest.raises(RelayError) as caught:
            attempt()
        err = caught.value
        found[name] = (type(err).__name__, err.message, err.details)
    return found


def test_refusals_over_http_are_the_embedded_errors_with_the_same_messages(
    tmp_path: Path,
    database: str | None,
) -> None:
    with Relay.open(dir=tmp_path / "embedded") as relay:
        embedded = refusals(relay)
    with (
        live_server(tmp_path / "remote", database=database) as srv,
        Relay.open(url=srv.url) as relay,
    ):
        remote = refusals(relay)
    assert "RelayError" not in {kind for kind, _, _ in embedded.values()}
    for name, expected in embedded.items():
        if name in SCHEMA_WORDED:
            assert remote[name][0] == expected[0], name
        else:
            assert remote[name] == expected, name


def batch_and_sweep(relay: Relay) -> list[object]:
    """The service calls no handle method makes: a batch send (good and bad), a sweep."""
    relay.register("alice")
    relay.register("bob")
    service = relay.service
    sent = service.send_many(
        "alice",
        [{"to": "bob", "body": "one"}, {"to": "bob", "body": "two", "priority": "high"}],
    )
    seen: list[object] = [[(m.id, m.body, m.priority, m.recipients) for m in sent]]
    with pytest.raises(RelayError) as caught:
        service.send_many("alice", [{"to": "bob", "body": "fine"}, {"to": "nobody", "body": "x"}])
    seen.append((type(caught.value).__name__, caught.value.message, caught.value.details))
    seen.append(service.unread_count("bob"))  # the failed batch stored nothing
    seen.append(service.sweep())
    seen.append(service.last_event_id())
    return seen


def test_batches_and_sweeps_over_http_match_the_embedded_service(
    tmp_path: Path, database: str | None
) -> None:
    with Relay.open(dir=tmp_path / "embedded") as relay:
        embedded = batch_and_sweep(relay)
    with (
        live_server(tmp_path / "remote", database=database) as srv,
        Relay.open(url=srv.url) as relay,
    ):
        remote = batch_and_sweep(relay)
    assert remote == embedded
    assert embedded[2] == 2
