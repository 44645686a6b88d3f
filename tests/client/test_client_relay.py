"""The Python SDK: Relay.open, agent handles and their cursor, fencing, typed results.

The handle tests run on every backend (the ``relay`` fixture below): embedded, and
over a real relay server on the same store, where the results and errors are the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from relaybus import (
    Agent,
    AgentHandle,
    AgentStatus,
    Conflict,
    Forbidden,
    InvalidInput,
    Message,
    NotFound,
    Relay,
    Task,
    TaskStatus,
)
from relaybus.models import LeaseRenewal
from relaybus.service import Service
from relaybus.store import sqlite_url
from tests.support.live import LiveServer, server_settings

if TYPE_CHECKING:
    from tests.conftest import Background, Clock, Parking

HUNG = 30.0
ADMIN = "rb_test-admin-token"


@pytest.fixture(params=["embedded", "server", "server-with-token"])
def relay(request: pytest.FixtureRequest, service: Service) -> Iterator[Relay]:
    """The SDK on the test's store (each dialect, the test's clock): embedded, or over a
    real server on that store, in open loopback mode (the client acts with the agents'
    own tokens) or in token mode (with the admin token)."""
    if request.param == "embedded":
        yield Relay.embedded(service)  # the store fixture closes the store
        return
    admin = ADMIN if request.param == "server-with-token" else None
    srv = LiveServer(service, server_settings(service.settings, token=admin))
    srv.start()
    try:
        with Relay.open(url=srv.url, token=admin) as opened:
            yield opened
    finally:
        srv.stop()


# -- opening --------------------------------------------------------------------------
# SQLite only, but for the last: which folder (and relay.db file) Relay.open picks is a
# question PostgreSQL has no counterpart to; opening by URL runs on each dialect.


def test_open_with_a_dir_creates_the_embedded_store(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / "relay") as relay:
        assert relay.store.path == tmp_path / "relay" / "relay.db"
        relay.register("alice")
    assert (tmp_path / "relay" / "relay.db").is_file()
    with Relay.open(dir=tmp_path / "relay") as again:
        assert [a.id for a in again.agents()] == ["alice"]


def test_open_finds_the_repository_relay_from_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pkg").mkdir()
    monkeypatch.chdir(tmp_path / "pkg")
    with Relay.open() as relay:
        assert relay.store.path == tmp_path / ".relay" / "relay.db"


def test_open_honours_relaybus_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYBUS_DIR", str(tmp_path / "shared"))
    with Relay.open() as relay:
        assert relay.store.path == tmp_path / "shared" / "relay.db"


def test_an_explicit_database_wins_over_dir_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DIR", str(tmp_path / "env"))
    url = sqlite_url(tmp_path / "explicit")
    with Relay.open(dir=tmp_path / "dir", database=url) as relay:
        assert relay.store.path == tmp_path / "explicit" / "relay.db"


def test_an_explicit_dir_wins_over_relaybus_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DATABASE", sqlite_url(tmp_path / "env"))
    with Relay.open(dir=tmp_path / "dir") as relay:
        assert relay.store.path == tmp_path / "dir" / "relay.db"


def test_open_takes_a_workspace(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path, workspace="team") as relay:
        relay.register("alice")
        assert relay.get_agent("alice").workspace == "team"
    with Relay.open(dir=tmp_path) as default:
        assert default.agents() == []


def test_open_works_on_the_tests_database(store: Any) -> None:
    url = store.url.render_as_string(hide_password=False)
    with Relay.open(database=url) as relay:
        relay.register("alice")
        assert relay.store.dialect == store.dialect
        assert [a.id for a in relay.agents()] == ["alice"]


# -- agents and fencing -------------------------------------------------------------------


def test_register_returns_a_handle_for_this_process(relay: Relay) -> None:
    me = relay.register("alice", label="Alice", tags=["api"], capabilities=["review"])
    assert isinstance(me, AgentHandle)
    assert (me.id, me.epoch, me.cursor) == ("alice", 1, 0)
    info = me.info()
    assert isinstance(info, Agent)
    assert info.pid == os.getpid()
    assert info.instance_id  # a fresh instance id per registration
    assert (info.label, info.tags, info.capabilities) == ("Alice", ["api"], ["review"])
    assert info.status is AgentStatus.ONLINE


def test_register_without_an_id_derives_one(relay: Relay) -> None:
    me = relay.register(tool="codex")
    assert "-codex-" in me.id


def test_registering_again_fences_off_the_old_handle(relay: Relay) -> None:
    relay.register("bob")
    old = relay.register("alice")
    new = relay.register("alice")
    assert (old.epoch, new.epoch) == (1, 2)
    with pytest.raises(Conflict, match="stale epoch"):
        old.send("bob", "from the past")
    with pytest.raises(Conflict):
        old.heartbeat()
    with pytest.raises(Conflict):
        old.read()
    assert new.send("bob", "from the present").recipients == ["bob"]


def test_the_same_instance_id_keeps_the_handle_valid(relay: Relay) -> None:
    relay.register("bob")
    first = relay.register("alice", instance_id="session-1")
    second = relay.register("alice", instance_id="session-1")
    assert first.epoch == second.epoch
    assert first.send("bob", "still me").recipients == ["bob"]


def test_agent_gives_an_unfenced_handle_to_an_existing_agent(relay: Relay) -> None:
    relay.register("alice")
    relay.register("bob")
    handle = relay.agent("alice")
    assert handle.epoch is None
    assert handle.send("bob", "hi").sender == "alice"
    with pytest.raises(NotFound, match="did you mean 'alice'"):
        relay.agent("alicee")


def test_heartbeat_update_and_unregister(relay: Relay, clock: Clock) -> None:
    me = relay.register("alice")
    clock.advance(10)
    assert me.heartbeat().last_seen_at.timestamp() == clock.now
    assert me.heartbeat("busy").status is AgentStatus.BUSY
    updated = me.update(label="Alice B", channels=["ops"], status="idle")
    assert (updated.label, updated.channels, updated.status) == (
        "Alice B",
        ["ops"],
        AgentStatus.IDLE,
    )
    me.unregister()
    with pytest.raises(NotFound):
        relay.get_agent("alice")


def test_agents_lists_with_filters(relay: Relay) -> None:
    relay.register("alice", tags=["api"], capabilities=["review"])
    relay.register("bob", tags=["web"], channels=["dev"])
    relay.agent("bob").update(status="offline")
    assert [a.id for a in relay.agents()] == ["alice", "bob"]
    assert [a.id for a in relay.agents(tag="web")] == ["bob"]
    assert [a.id for a in relay.agents(capability="review")] == ["alice"]
    assert [a.id for a in relay.agents(online_only=True)] == ["alice"]
    assert [a.id for a in relay.agents(status="offline")] == ["bob"]
    assert [a.id for a in relay.agents(channel="ops")] == ["alice"]


# -- messages, inbox, cursor ------------------------------------------------------------------


def test_send_inbox_read_and_reply(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    question = alice.send("bob", "ready for review?", subject="PR 7", priority="high")
    assert isinstance(question, Message)
    (got,) = bob.inbox()
    assert (got.id, got.subject, got.priority.value) == (question.id, "PR 7", "high")
    assert bob.unread_count() == 1  # inbox() only peeks
    assert [m.id for m in bob.read()] == [question.id]
    assert bob.unread_count() == 0
    answer = bob.reply(got, "yes")
    assert (answer.to, answer.thread_id, answer.reply_to) == ("alice", question.id, question.id)
    by_id = alice.reply(answer.id, "thanks")
    assert by_id.to == "bob"
    assert [m.id for m in relay.thread(by_id.id)] == [question.id, answer.id, by_id.id]
    assert relay.message(question.id).recipients == ["bob"]


def test_reply_passes_options_through(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    root = alice.send("bob", "q")
    answer = bob.reply(root, "a", subject="Re: q", meta={"k": 1})
    assert (answer.subject, answer.meta) == ("Re: q", {"k": 1})


def test_mark_read_by_ids_and_up_to(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    ids = [alice.send("bob", str(n)).id for n in range(4)]
    assert bob.mark_read([ids[0]]) == 1
    assert bob.mark_read(up_to=ids[2]) == 2
    assert [m.id for m in bob.inbox()] == [ids[3]]


def test_receipts_through_handles(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    carol = relay.register("carol")
    sent = alice.send("broadcast", "standup in 5")
    assert [d.state.value for d in relay.deliveries(sent.id)] == ["queued", "queued"]
    assert bob.mark_delivered([sent.id], via="pty") == 1
    assert [m.id for m in carol.inbox(via="mcp")] == [sent.id]
    delivered = relay.deliveries(sent.id, until="delivered", timeout=HUNG)
    assert [(d.agent_id, d.state.value, d.via) for d in delivered] == [
        ("bob", "delivered", "pty"),
        ("carol", "delivered", "mcp"),
    ]
    carol.mark_read([sent.id])
    short = relay.deliveries(sent.id, until="read", timeout=0.05)  # bob has not read it
    assert [d.state.value for d in short] == ["delivered", "read"]
    assert carol.inbox(unread_only=False)[0].delivered_at is not None
    with pytest.raises(InvalidInput, match="'fax'|via"):
        bob.mark_delivered([sent.id], via="fax")


def test_a_message_stream_records_what_it_hands_over_as_delivered(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    waiting = alice.send("bob", "already here")
    incoming = bob.messages(unread=True)
    assert next(incoming).id == waiting.id
    live = alice.send("bob", "just arrived")
    assert next(incoming).id == live.id
    incoming.close()
    assert [(d.state.value, d.via) for d in relay.deliveries(waiting.id)] == [
        ("delivered", "stream")
    ]
    assert relay.deliveries(live.id)[0].via == "stream"


def test_the_handle_cursor_follows_what_it_has_seen(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    first = alice.send("bob", "one")
    second = alice.send("bob", "two")
    assert [m.id for m in bob.inbox(limit=1, newest_first=False)] == [first.id]
    assert bob.cursor == first.id
    # wait() waits for mail above the cursor: the unseen second message.
    assert [m.id for m in bob.wait(timeout=HUNG)] == [second.id]
    assert bob.cursor == second.id
    assert bob.wait(timeout=0.2) == []  # both still unread, but already seen
    assert [m.id for m in bob.wait(timeout=HUNG, since=0)] == [first.id, second.id]


@pytest.mark.parametrize("relay", ["embedded"], indirect=True)  # parks on the store
def test_wait_is_woken_by_another_handle(
    relay: Relay, parking: Parking, background: type[Background[Any]]
) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    waiter = background(lambda: bob.wait(timeout=HUNG, mark_read=True))
    assert parking.asleep.wait(HUNG)
    sent = alice.send("bob", "wake up")
    assert [m.id for m in waiter.outcome()] == [sent.id]
    assert parking.wakeups >= 1
    assert bob.cursor == sent.id
    assert bob.unread_count() == 0


def test_bad_input_through_the_sdk_raises_the_relay_errors(relay: Relay) -> None:
    alice = relay.register("alice")
    relay.register("bob")
    with pytest.raises(NotFound, match="did you mean 'bob'"):
        alice.send("bobby", "hi")
    with pytest.raises(InvalidInput, match="tag:NAME"):
        alice.send("what:ever", "hi")
    assert relay.events(since=0)[-1].kind == "agent.registered"


# -- tasks ---------------------------------------------------------------------------------


def test_claimable_work_through_handles(relay: Relay, clock: Clock) -> None:
    author = relay.register("author")
    one = relay.register("rev1", capabilities=["review"])
    two = relay.register("rev2", capabilities=["review"])
    posted = author.send("cap:review", "review PR 7", claimable=True)
    assert posted.task_id is not None
    task_id = posted.task_id

    task = one.claim(task_id, lease=60)
    assert isinstance(task, Task)
    assert (task.status, task.assignee) == (TaskStatus.CLAIMED, "rev1")
    with pytest.raises(Conflict) as caught:
        two.claim(task_id)
    assert caught.value.details["holder"] == "rev1"

    clock.advance(30)
    renewed = one.renew(task_id, lease=60)
    assert renewed.lease_expires_at is not None
    assert renewed.lease_expires_at.timestamp() == clock.now + 60
    assert one.update_task(task_id, progress=50, note="half").status is TaskStatus.IN_PROGRESS
    with pytest.raises(Forbidden):
        two.update_task(task_id, status="done")
    assert one.release(task_id).status is TaskStatus.OPEN
    two.claim(task_id)
    done = two.update_task(task_id, status="done", result="LGTM")
    assert (done.status, done.result) == (TaskStatus.DONE, "LGTM")

    assert relay.task(task_id) == done
    assert [t.id for t in relay.tasks(status="done")] == [task_id]
    assert [t.id for t in relay.tasks(assignee="rev2")] == [task_id]
    assert [h.kind for h in relay.task_history(task_id)] == [
        "created",
        "claimed",
        "in_progress",
        "released",
        "claimed",
        "done",
    ]


def test_the_operator_may_update_any_task(relay: Relay) -> None:
    author = relay.register("author")
    relay.register("worker")
    task_id = author.send("worker", "job", claimable=True).task_id
    assert task_id is not None
    canceled = relay.update_task(task_id, status="canceled", note="not needed")
    assert canceled.status is TaskStatus.CANCELED
    assert relay.task_history(task_id)[-1].agent_id is None


def test_the_operator_releases_a_stuck_lease_and_pages_the_tasks(relay: Relay) -> None:
    author = relay.register("author")
    worker = relay.register("worker")
    first = author.send("worker", "job 1", claimable=True).task_id
    second = author.send("worker", "job 2", claimable=True).task_id
    assert first is not None and second is not None
    worker.claim(first)

    released = relay.release(first)
    assert (released.status, released.assignee) == (TaskStatus.OPEN, None)
    assert relay.task_history(first)[-1].note == "released by operator"
    with pytest.raises(Conflict):
        relay.release(first)  # nobody holds it now
    assert [t.id for t in relay.tasks(limit=1)] == [second]
    assert [t.id for t in relay.tasks(before=second)] == [first]


# -- events, retention, wire shape -------------------------------------------------------------


def test_events_and_wait_events(relay: Relay) -> None:
    relay.register("alice")
    events = relay.events()
    assert [e.kind for e in events] == ["agent.registered"]
    assert relay.events(since=events[-1].id) == []
    assert relay.wait_events(0.2, since=events[-1].id) == []
    assert relay.wait_events(HUNG, since=0) == events
    assert len(relay.events(limit=1)) == 1


def test_prune_through_the_relay(relay: Relay, clock: Clock) -> None:
    alice = relay.register("alice")
    alice.send(relay.register("bob").id, "old")
    clock.advance(31 * 86400)
    report = relay.prune(agent_days=60)
    assert (report.messages, report.deliveries, report.agents) == (1, 1, 0)


def test_results_dump_to_json_with_aware_utc_times(relay: Relay) -> None:
    alice = relay.register("alice")
    relay.register("bob")
    sent = alice.send("bob", "hi", meta={"k": [1, 2]})
    wire = sent.model_dump(mode="json")
    assert wire["sender"] == "alice"
    assert wire["to"] == "bob"
    assert wire["meta"] == {"k": [1, 2]}
    assert wire["priority"] == "normal"
    created = datetime.fromisoformat(wire["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert Message.model_validate(wire) == sent
    agent_wire = alice.info().model_dump(mode="json")
    assert agent_wire["status"] == "online"
    with pytest.raises(ValueError):
        sent.__setattr__("body", "changed")  # frozen


def test_a_reply_through_a_handle_may_be_redirected(relay: Relay) -> None:
    alice = relay.register("alice")
    bob = relay.register("bob")
    carol = relay.register("carol")
    first = alice.send("bob", "who owns src/auth?")
    answer = bob.reply(first, "carol does, asking her", to="carol")
    assert answer.recipients == ["carol"]
    assert answer.thread_id == first.id
    assert [m.id for m in carol.inbox()] == [answer.id]


def test_an_agent_renews_every_lease_it_holds_by_its_own_length(relay: Relay, clock: Clock) -> None:
    author = relay.register("author")
    worker = relay.register("worker")
    short = author.send("worker", "quick one", claimable=True).task_id
    long = author.send("worker", "long one", claimable=True).task_id
    assert short is not None and long is not None
    assert worker.renew_held() == LeaseRenewal()  # nothing held
    worker.claim(short, lease=3.0)
    worker.claim(long, lease=90.0)
    clock.advance(2.0)
    renewal = worker.renew_held()
    assert renewal.renewed == [short, long]
    assert renewal.next_in == pytest.approx(1.0)
    expires = worker.task(short).lease_expires_at
    assert expires is not None and expires.timestamp() == pytest.approx(clock.now + 3.0)
    stale = relay.agent("worker", epoch=(worker.epoch or 0) + 1)
    with pytest.raises(Conflict, match="stale epoch"):
        stale.renew_held()
