"""Set-based targets: the recipients SQL chooses are the ones the routing rules name.

Hypothesis draws agent populations (tags, capabilities, channels, labels, online or
offline, twins in another workspace) and sends (target x channel x sender) on each
dialect; every answer, recipients or the reason for nobody, is compared with a plain
Python reading of the rules in ``service/targets.py``. Each example uses a fresh
workspace of the test's store, so examples never see each other.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from relaybus.errors import NotFound
from relaybus.service import Service
from relaybus.service.targets import _INSERTS
from relaybus.store import Store
from relaybus.store.schema import deliveries, messages

IDS = [f"a{i}" for i in range(6)]
TAGS = ["x", "y", "z"]
CAPS = ["review", "deploy"]
CHANNELS = ["dev", "ops"]
LABELS = ["QA", "UI writer"]


@dataclass(frozen=True)
class Spec:
    id: str
    label: str | None
    tags: tuple[str, ...]
    capabilities: tuple[str, ...]
    channels: tuple[str, ...]
    offline: bool


def subsets(items: list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(items), unique=True, max_size=len(items)).map(tuple)


specs = st.builds(
    Spec,
    id=st.sampled_from(IDS),
    label=st.none() | st.sampled_from(LABELS),
    tags=subsets(TAGS),
    capabilities=subsets(CAPS),
    channels=subsets(CHANNELS),
    offline=st.booleans(),
)
populations = st.lists(specs, min_size=1, max_size=len(IDS), unique_by=lambda s: s.id)
targets = st.one_of(
    st.just("broadcast"),
    st.sampled_from(TAGS + ["w"]).map(lambda t: f"tag:{t}"),
    st.sampled_from(CAPS + ["test"]).map(lambda c: f"cap:{c}"),
    st.sampled_from(LABELS + ["nobody"]).map(lambda text: f"label:{text}"),
    st.sampled_from(IDS),
)
sends = st.lists(
    st.tuples(targets, st.none() | st.sampled_from([*CHANNELS, "random"]), st.integers(0, 99)),
    min_size=1,
    max_size=6,
)


def expected(population: list[Spec], target: str, channel: str | None, sender: str) -> object:
    """The sorted recipients the rules give, or the phrase of the NotFound they raise."""
    kind, _, value = target.partition(":")
    if target == "broadcast":
        matched = population
    elif kind == "tag":
        matched = [a for a in population if value in a.tags]
    elif kind == "cap":
        matched = [a for a in population if value in a.capabilities]
    elif kind == "label":
        matched = [a for a in population if a.label == value]
    else:
        matched = [a for a in population if a.id == target]
    reached = [
        a.id
        for a in matched
        if (channel is None or not a.channels or channel in a.channels) and a.id != sender
    ]
    if reached:
        return sorted(reached)
    if matched and all(a.id == sender for a in matched):
        return "matches only the sender"
    if matched:
        return "listens on channel"
    return "matches no agent"


def register(service: Service, workspace: str, spec: Spec) -> None:
    service.register(
        spec.id,
        workspace=workspace,
        label=spec.label,
        tags=spec.tags,
        capabilities=spec.capabilities,
        channels=spec.channels,
    )
    if spec.offline:
        service.update_agent(spec.id, workspace=workspace, status="offline")


def stored(service: Service, workspace: str) -> tuple[int, int]:
    """How many messages and deliveries ``workspace`` holds."""
    with service.store.read() as conn:
        count = [
            conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.workspace == workspace)
            ).scalar_one()
            for t in (messages, deliveries)
        ]
    return count[0], count[1]


@settings(
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one relay for all examples
)
@given(population=populations, attempts=sends)
def test_set_based_targets_reach_exactly_the_agents_the_routing_rules_name(
    service: Service, population: list[Spec], attempts: list[tuple[str, str | None, int]]
) -> None:
    workspace, elsewhere = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    for spec in population:
        register(service, workspace, spec)
        # A twin in another workspace matches every target too, and is never reached.
        register(service, elsewhere, spec)
    for target, channel, pick in attempts:
        sender = population[pick % len(population)].id
        want = expected(population, target, channel, sender)
        before = stored(service, workspace)
        try:
            sent = service.send(sender, target, "hi", workspace=workspace, channel=channel)
        except NotFound as exc:
            assert isinstance(want, str), (target, channel, sender, exc)
            assert want in str(exc)
            assert stored(service, workspace) == before  # nothing written
            continue
        assert sent.recipients == want, (target, channel, sender)
        assert service.get_message(sent.id, workspace=workspace).recipients == want
        messages_before, deliveries_before = before
        assert stored(service, workspace) == (messages_before + 1, deliveries_before + len(want))
    assert stored(service, elsewhere) == (0, 0)


def test_a_target_that_reaches_nobody_leaves_no_message_in_an_open_transaction(
    service: Service,
) -> None:
    # A caller that goes on with its transaction after a refused send (a group commit)
    # commits no half-written message.
    service.register("alice", tags=["lead"])
    service.register("bob", tags=["backend"], channels=["dev"])
    with service.store.write() as conn:
        for target, channel in [("tag:nobody", None), ("tag:backend", "ops"), ("tag:lead", None)]:
            with pytest.raises(NotFound):
                service._store(
                    conn,
                    "default",
                    "alice",
                    service._draft(target, "hi", None, channel, None, "normal", None, False),
                    1.0,
                )
    assert stored(service, "default") == (0, 0)
    assert service.events(kinds=["message.sent"]) == []


@pytest.mark.slow
def test_a_broadcast_to_a_thousand_agents_stores_a_thousand_deliveries_and_one_event(
    service: Service,
) -> None:
    names = [f"agent-{i:04d}" for i in range(1000)]
    service.register("caster")
    for i, name in enumerate(names):
        service.register(name, tags=["all", f"t{i % 3}"], channels=["dev"] if i % 2 else [])
    sent = service.send("caster", "broadcast", "hello, everyone")
    assert sent.recipients == names
    assert stored(service, "default") == (1, 1000)
    (event,) = service.events(kinds=["message.sent"])
    assert event.data["message_id"] == sent.id
    assert event.data["recipients"] == names
    for name in (names[0], names[499], names[-1]):
        assert [m.id for m in service.inbox(name)] == [sent.id]
    # The same population through a tag and a channel: the odd agents listen on dev
    # only, the even ones hear every channel.
    narrowed = service.send("caster", "tag:t1", "ops only", channel="ops")
    assert narrowed.recipients == [n for i, n in enumerate(names) if i % 3 == 1 and i % 2 == 0]


def test_a_fan_out_after_earlier_writes_of_its_transaction_opens_no_statement_journal(
    sqlite_store: Store,
) -> None:
    """A plain ``INSERT ... SELECT`` of many rows after other writes of the same
    transaction makes SQLite copy each page it changes into a statement journal, a
    temporary file it opens as ``etilqs_*`` and unlinks at once (sqlite.org, "Temporary
    Files Used By SQLite", 2.5): a broadcast changes a page of the unread index per
    recipient. The fan-out statement must not need one: its open file would show in
    ``/proc/self/fd`` until the transaction ends."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("reads /proc/self/fd (Linux)")
    service = Service(sqlite_store)
    service.register("caster")
    for i in range(1000):
        service.register(f"agent-{i:04d}")
    for _ in range(4):  # the unread index's pages fill: the next one changes more than 64 KiB
        last = service.send("caster", "broadcast", "fills the unread index's pages")
    statement = cast(sa.Insert, _INSERTS[("broadcast", False)].sql)
    compiled = statement.compile(dialect=sqlite_dialect())
    values = {"mid": last.id + 1, "ws": "default", "sender": "caster"}
    assert compiled.positiontup is not None
    conn = sqlite3.connect(sqlite_store.url.database or "", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE agents SET last_seen_at = 1 WHERE id = 'caster'")  # an earlier write
        cursor = conn.execute(str(compiled), [values[n] for n in compiled.positiontup])
        assert cursor.rowcount == 1000
        assert not [f for f in open_files() if "etilqs" in f], open_files()
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def open_files() -> list[str]:
    """What this process's file descriptors point at (Linux)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            continue  # closed since (listdir's own descriptor)
    return found
