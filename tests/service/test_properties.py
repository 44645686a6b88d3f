"""Properties checked with hypothesis: target parsing, text round-trips, the task lifecycle.

The task machine drives claim/renew/release/update and the clock at random and compares
every answer, and the stored task, with a small model of the rules in ``service/tasks.py``.
Each run uses a fresh workspace of the test's store, so examples never see each other.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from relaybus.errors import Conflict, Forbidden, InvalidInput, RelayError
from relaybus.models import TaskStatus
from relaybus.service import Service, parse_target

if TYPE_CHECKING:
    from tests.conftest import Clock

QUICK = settings(database=None, deadline=None, max_examples=300)
NAME_CHARS = string.ascii_letters + string.digits + "._@/-"
names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(NAME_CHARS, max_size=20),
)
labels = st.text(min_size=1, max_size=60).map(str.strip).filter(lambda s: 0 < len(s) <= 200)
valid_targets = st.one_of(
    names.filter(lambda n: n != "broadcast" and ":" not in n),
    st.just("broadcast"),
    st.builds(lambda p, n: f"{p}:{n}", st.sampled_from(["tag", "cap"]), names),
    labels.map(lambda text: f"label:{text}"),
)


@QUICK
@given(st.text())
def test_parse_target_raises_nothing_but_invalid_input(text: str) -> None:
    try:
        target = parse_target(text)
    except InvalidInput:
        return
    # Whatever parses prints back to an expression that parses to the same target.
    assert parse_target(str(target)) == target


@QUICK
@given(valid_targets)
def test_valid_target_expressions_round_trip(expression: str) -> None:
    target = parse_target(expression)
    assert str(target) == expression
    if expression == "broadcast":
        assert target.kind == "broadcast"
    else:
        assert target.kind == (expression.split(":")[0] if ":" in expression else "agent")


@QUICK
@given(valid_targets, st.text(" \t", max_size=3), st.text(" \t", max_size=3))
def test_surrounding_blanks_do_not_change_a_target(expression: str, left: str, right: str) -> None:
    assert parse_target(left + expression + right) == parse_target(expression)


@settings(
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one relay for all examples
)
@given(body=st.text(max_size=300), subject=st.none() | st.text(max_size=40))
def test_any_text_is_stored_exactly_or_refused_as_invalid_input_on_both_dialects(
    service: Service, body: str, subject: str | None
) -> None:
    service.register("alice")
    service.register("bob")
    try:
        sent = service.send("alice", "bob", body, subject=subject)
    except InvalidInput:
        # Only text no dialect can store the same way is refused.
        assert any("\x00" in t or _has_surrogate(t) for t in (body, subject or ""))
        return
    stored = service.get_message(sent.id)
    assert (stored.body, stored.subject) == (body, subject)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# -- the task lifecycle -------------------------------------------------------------------

LEASE = 300.0  # longer than the stale TTL: a holder can go offline with its lease running
STALE_TTL = 90.0  # Settings.stale_ttl default
WORKERS = ("w1", "w2")
CREATOR = "boss"
HELD = {TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED}
#: Seconds that pass before an action: every action may come late (swarm testing would
#: otherwise often switch a separate "time passes" rule off for a whole run).
PAUSES = st.sampled_from([0.0, 0.0, 1.0, 30.0, STALE_TTL + 1, LEASE + 1])


@dataclass
class ModelTask:
    status: TaskStatus = TaskStatus.OPEN
    assignee: str | None = None
    lease_until: float | None = None
    progress: int = 0


class TaskMachine(RuleBasedStateMachine):
    """Two workers and a creator working one task at a time; time passes before actions."""

    #: Set by the test on a subclass: hypothesis constructs machines without arguments.
    service: ClassVar[Service]
    clock: ClassVar[Clock]

    def __init__(self) -> None:
        super().__init__()
        self.ws = uuid.uuid4().hex[:12]
        self.seen: dict[str, float] = {}
        for agent in (CREATOR, *WORKERS):
            self.service.register(agent, workspace=self.ws, capabilities=["work"])
            self.seen[agent] = self.clock.now
        self.task_id = 0
        self.next_task()

    # The model of the rules ------------------------------------------------------------

    def offline(self, agent: str) -> bool:
        return self.clock.now - self.seen[agent] > STALE_TTL

    def lapsed(self) -> bool:
        m = self.model
        assert m.assignee is not None and m.lease_until is not None
        return m.lease_until < self.clock.now or self.offline(m.assignee)

    def acted(self, agent: str) -> None:
        self.seen[agent] = self.clock.now

    # Rules ----------------------------------------------------------------------------

    @precondition(lambda self: self.model.status.terminal)
    @rule()
    def next_task(self) -> None:
        """Once the task is finished, the creator posts the next one."""
        sent = self.service.send(CREATOR, "cap:work", "the job", workspace=self.ws, claimable=True)
        assert sent.task_id is not None and sent.task_id > self.task_id
        self.task_id = sent.task_id
        self.acted(CREATOR)
        self.model = ModelTask()

    @rule(agent=st.sampled_from(WORKERS), pause=PAUSES)
    def heartbeat(self, agent: str, pause: float) -> None:
        self.clock.advance(pause)
        self.service.heartbeat(agent, workspace=self.ws)
        self.acted(agent)

    @rule(agent=st.sampled_from(WORKERS), pause=PAUSES)
    def claim(self, agent: str, pause: float) -> None:
        self.clock.advance(pause)
        m = self.model
        try:
            task = self.service.claim(self.task_id, agent, workspace=self.ws, lease=LEASE)
        except Conflict as exc:
            terminal = m.status.terminal
            held_by_other = m.status in HELD and m.assignee != agent and not self.lapsed()
            assert terminal or held_by_other, exc.message
            if held_by_other:
                assert exc.details["holder"] == m.assignee
            return
        assert not m.status.terminal
        assert not (m.status in HELD and m.assignee != agent and not self.lapsed())
        renewing = m.status in HELD and m.assignee == agent
        self.acted(agent)
        m.status = m.status if renewing else TaskStatus.CLAIMED
        m.assignee = agent
        m.lease_until = self.clock.now + LEASE
        assert task.status is m.status

    @rule(agent=st.sampled_from(WORKERS), pause=PAUSES)
    def renew(self, agent: str, pause: float) -> None:
        self.clock.advance(pause)
        m = self.model
        holds = m.status in HELD and m.assignee == agent
        try:
            self.service.renew(self.task_id, agent, workspace=self.ws, lease=LEASE)
        except Conflict:
            assert not holds or (m.lease_until is not None and m.lease_until < self.clock.now)
            return
        assert holds and m.lease_until is not None and m.lease_until >= self.clock.now
        self.acted(agent)
        m.lease_until = self.clock.now + LEASE

    @rule(agent=st.sampled_from(WORKERS), pause=PAUSES)
    def release(self, agent: str, pause: float) -> None:
        self.clock.advance(pause)
        m = self.model
        holds = m.status in HELD and m.assignee == agent
        try:
            task = self.service.release(self.task_id, agent, workspace=self.ws)
        except Conflict:
            assert not holds or (m.lease_until is not None and m.lease_until < self.clock.now)
            return
        assert holds
        self.acted(agent)
        m.status, m.assignee, m.lease_until = TaskStatus.OPEN, None, None
        assert task.status is TaskStatus.OPEN

    @rule(
        agent=st.sampled_from([*WORKERS, CREATOR]),
        status=st.none() | st.sampled_from(["in_progress", "blocked", "done", "failed"]),
        progress=st.none() | st.integers(0, 100),
        pause=PAUSES,
    )
    def update(self, agent: str, status: str | None, progress: int | None, pause: float) -> None:
        self.clock.advance(pause)
        if status is None and progress is None:
            progress = 1
        m = self.model
        try:
            task = self.service.update_task(
                self.task_id, agent, workspace=self.ws, status=status, progress=progress
            )
        except (Conflict, Forbidden) as exc:
            self.check_refusal(agent, status, exc)
            return
        new = TaskStatus(status) if status else None
        holder = m.status in HELD and m.assignee == agent
        assert not m.status.terminal
        assert holder or (agent == CREATOR and new is not None and new.terminal)
        if holder:
            assert m.lease_until is not None and m.lease_until >= self.clock.now
        self.acted(agent)
        target = new or (TaskStatus.IN_PROGRESS if m.status is TaskStatus.CLAIMED else m.status)
        m.status = target
        if progress is not None:
            m.progress = progress
        if target is TaskStatus.DONE:
            m.progress = 100
        if target.terminal:
            m.lease_until = None
        elif holder:
            m.lease_until = self.clock.now + LEASE  # update renews by the claimed length
        assert task.status is m.status

    def check_refusal(self, agent: str, status: str | None, exc: RelayError) -> None:
        m = self.model
        holder = m.status in HELD and m.assignee == agent
        expired = m.lease_until is not None and m.lease_until < self.clock.now
        creator_closing = agent == CREATOR and status in ("done", "failed")
        if isinstance(exc, Forbidden):
            assert not holder and not creator_closing and not m.status.terminal
        else:
            assert m.status.terminal or (holder and expired), exc.message

    # What must always hold -------------------------------------------------------------

    @invariant()
    def stored_task_matches_the_model(self) -> None:
        task = self.service.get_task(self.task_id, workspace=self.ws, sweep=False)
        m = self.model
        assert (task.status, task.assignee, task.progress) == (m.status, m.assignee, m.progress)
        lease = task.lease_expires_at.timestamp() if task.lease_expires_at else None
        assert lease == m.lease_until
        # A held task has exactly one assignee and a lease; an open one has neither.
        if task.status in HELD:
            assert task.assignee is not None and task.lease_expires_at is not None
        if task.status is TaskStatus.OPEN:
            assert task.assignee is None and task.lease_expires_at is None

    @invariant()
    def history_ends_in_the_current_status(self) -> None:
        history = self.service.task_history(self.task_id, workspace=self.ws)
        assert history[0].kind == "created"
        assert history[-1].status is self.model.status


@pytest.mark.slow
def test_the_task_lifecycle_follows_its_rules(service: Service, clock: Clock) -> None:
    class OnTheTestStore(TaskMachine):
        pass

    OnTheTestStore.service = service
    OnTheTestStore.clock = clock
    run_state_machine_as_test(
        OnTheTestStore,
        settings=settings(database=None, deadline=None, max_examples=25, stateful_step_count=25),
    )
