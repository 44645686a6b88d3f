"""The SDK over a relay server: opening one, an unreachable one, and the same errors with
the same messages as the embedded mode. (The handle tests of ``test_client_relay.py`` run
over a server too, through their ``relay`` fixture.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relaybus import InvalidInput, Relay, RelayError, StoreError
from relaybus.client import calls
from relaybus.client.backends import RemoteBackend
from tests.support.live import free_port, live_server

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
        assert isinstance(relay.backend, RemoteBackend)
        assert relay.url == "http://127.0.0.1:4850"
        assert relay.settings.token == "rb_secret"
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


def test_a_remote_relay_has_no_store_or_service_to_hand_out() -> None:
    with Relay.open(url="http://127.0.0.1:4850") as relay:
        with pytest.raises(InvalidInput, match="needs the database.*--database"):
            _ = relay.store
        with pytest.raises(InvalidInput, match="needs the database.*--database"):
            _ = relay.service


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
    limit = relay.settings.max_body_bytes
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
    """The calls no handle method makes: a batch send (good and bad), a sweep."""
    relay.register("alice")
    relay.register("bob")
    run, workspace = relay.backend.run, relay.workspace
    batch = [{"to": "bob", "body": "one"}, {"to": "bob", "body": "two", "priority": "high"}]
    sent = run(calls.send_many("alice", batch, workspace=workspace))
    seen: list[object] = [[(m.id, m.body, m.priority, m.recipients) for m in sent]]
    bad = [{"to": "bob", "body": "fine"}, {"to": "nobody", "body": "x"}]
    with pytest.raises(RelayError) as caught:
        run(calls.send_many("alice", bad, workspace=workspace))
    seen.append((type(caught.value).__name__, caught.value.message, caught.value.details))
    seen.append(run(calls.unread_count("bob", workspace=workspace)))  # the batch stored nothing
    seen.append(run(calls.sweep(workspace=workspace)))
    seen.append(relay.last_event_id())
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
