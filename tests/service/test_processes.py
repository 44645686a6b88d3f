"""Several real OS processes on one relay: racing claims, SIGKILL durability, wake-ups.

The children run ``relay_child.py`` (next to this file) on the test's database: the SQLite
file in ``tmp_path`` or the test's PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from relaybus.service import Service
from relaybus.store import Store
from relaybus.store.schema import deliveries, events, messages, task_events, tasks

if TYPE_CHECKING:
    from tests.conftest import Background, Parking

CHILD = Path(__file__).with_name("relay_child.py")
HUNG = 60.0  # seconds before a silent child counts as hung (imports on a loaded CI box)
RACERS = 8
TASKS = 200
ACKED = 40  # messages the SIGKILL victim acknowledges before it dies


def database_url(store: Store) -> str:
    return store.url.render_as_string(hide_password=False)


class Child:
    """``relay_child.py`` as a subprocess, spoken to one JSON line at a time."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), url, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""

    def line(self) -> dict[str, Any]:
        """The child's next line as JSON; fails if it exits or is silent for HUNG seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + HUNG
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"child {self.proc.args!r} said nothing for {HUNG} s"
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"child exited with {self.proc.wait(HUNG)} before answering"
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        found: dict[str, Any] = json.loads(line)
        return found

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close stdin (the child's cue to exit) and reap it; kill it if it lingers."""
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(HUNG)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.slow
def test_racing_processes_claim_every_task_exactly_once(store: Store, service: Service) -> None:
    url = database_url(store)
    service.register("boss")
    with contextlib.ExitStack() as stack:
        racers = [
            stack.enter_context(Child(url, "race", f"racer{n}", "1", str(TASKS)))
            for n in range(RACERS)
        ]
        for racer in racers:
            assert "ready" in racer.line()
        sent = [service.send("boss", "cap:race", f"job {n}", claimable=True) for n in range(TASKS)]
        task_ids = [m.task_id for m in sent]
        assert task_ids == list(range(1, TASKS + 1))
        assert all(len(m.recipients) == RACERS for m in sent)
        for racer in racers:
            racer.tell("go")  # all at once: every racer tries every task, in the same order
        reports = [racer.line() for racer in racers]

    # What the processes say: every task won once, by exactly one of them.
    winner: dict[int, str] = {}
    for report in reports:
        for task_id in report["won"]:
            assert task_id not in winner, f"task {task_id} won twice"
            winner[task_id] = report["agent"]
    assert sorted(winner) == task_ids

    # What the database says agrees.
    with store.read() as conn:
        rows = conn.execute(sa.select(tasks.c.id, tasks.c.status, tasks.c.assignee)).all()
        claims = conn.execute(
            sa.select(task_events.c.task_id, task_events.c.agent_id).where(
                task_events.c.kind == "claimed"
            )
        ).all()
        other_kinds = conn.execute(
            sa.select(task_events.c.kind).where(task_events.c.kind.not_in(["created", "claimed"]))
        ).all()
        claimed_events = conn.execute(
            sa.select(sa.func.count()).where(events.c.kind == "task.claimed")
        ).scalar_one()
    assert {r.id: (r.status, r.assignee) for r in rows} == {
        task_id: ("claimed", agent) for task_id, agent in winner.items()
    }
    assert sorted((c.task_id, c.agent_id) for c in claims) == sorted(winner.items())
    assert other_kinds == []  # nobody released, renewed or took over anything
    assert claimed_events == TASKS


@pytest.mark.slow
def test_an_acknowledged_message_survives_a_sigkill_of_its_sender(
    store: Store, service: Service
) -> None:
    service.register("writer")
    service.register("reader")
    url = database_url(store)
    with Child(url, "send", "writer", "reader") as child:
        acknowledged = [child.line()["id"] for _ in range(ACKED)]
        os.kill(child.proc.pid, signal.SIGKILL)  # mid-way through its next sends
        assert child.proc.wait(HUNG) == -signal.SIGKILL

    with Store(url) as reopened:
        fresh = Service(reopened)
        for message_id in acknowledged:
            assert fresh.get_message(message_id).recipients == ["reader"]
        inbox = fresh.inbox("reader", newest_first=False, limit=1000)
        ids = [m.id for m in inbox]
        assert ids[: len(acknowledged)] == acknowledged
        assert len(ids) == len(set(ids))  # delivered exactly once
        assert [m.meta["n"] for m in inbox] == list(range(1, len(inbox) + 1))
        # All or nothing: whatever the kill interrupted left no message half-written.
        with reopened.read() as conn:
            n_messages = conn.execute(sa.select(sa.func.count()).select_from(messages))
            n_deliveries = conn.execute(sa.select(sa.func.count()).select_from(deliveries))
            n_sent = conn.execute(sa.select(sa.func.count()).where(events.c.kind == "message.sent"))
            counts = (n_messages.scalar_one(), n_deliveries.scalar_one(), n_sent.scalar_one())
        assert counts == (len(ids), len(ids), len(ids))
        # The relay still takes writes after the crash.
        assert fresh.send("reader", "writer", "you there?").recipients == ["writer"]


@pytest.mark.slow
def test_a_send_from_another_process_wakes_a_waiter(
    store: Store,
    service: Service,
    parking: Parking,
    background: type[Background[Any]],
) -> None:
    service.register("alice")
    service.register("bob")
    with Child(database_url(store), "send-on-go", "alice", "bob") as child:
        assert "ready" in child.line()
        waiter = background(lambda: service.wait("bob", HUNG))
        assert parking.asleep.wait(HUNG), "the waiter never went to sleep"
        child.tell("go")
        sent_id = child.line()["id"]
        got = waiter.outcome()
    assert [m.id for m in got] == [sent_id]
    assert parking.wakeups >= 1
