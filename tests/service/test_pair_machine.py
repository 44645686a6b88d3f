"""The pair lifecycle as a hypothesis state machine on both dialects: invites, answers,
pair messages, hang-ups, expiry and agents going offline, with time passing before each
action, checked against a model of the rules and the invariants: one pending or active
pair per agent, only the invitee answers, a final status stays, messages only while
active."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from relaybus.errors import Conflict, Forbidden, NotFound
from relaybus.models import PairStatus
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Clock

AGENTS = ("a", "b", "c", "d")
INVITE = 600.0  # Settings.pair_invite_seconds default
GRACE = 300.0  # Settings.pair_offline_grace_seconds default (above stale_ttl, 90 s)
#: Seconds that pass before an action (see tests/service/test_properties.py: PAUSES).
PAUSES = st.sampled_from([0.0, 0.0, 1.0, 60.0, GRACE + 1, INVITE])
OPEN = (PairStatus.PENDING, PairStatus.ACTIVE)
agent = st.sampled_from(AGENTS)


@dataclass
class ModelPair:
    inviter: str
    invitee: str
    status: PairStatus
    expires_at: float


class PairMachine(RuleBasedStateMachine):
    """Four agents inviting each other; the model settles what time decided first."""

    service: ClassVar[Service]
    clock: ClassVar[Clock]

    def __init__(self) -> None:
        super().__init__()
        self.ws = uuid.uuid4().hex[:12]
        self.seen: dict[str, float] = {}
        for name in AGENTS:
            self.service.register(name, workspace=self.ws)
            self.seen[name] = self.clock.now
        self.pairs: dict[int, ModelPair] = {}

    # The model --------------------------------------------------------------------------

    def later(self, pause: float) -> None:
        """Time passes; the model ends what it decided (the service may write it later:
        its answers must be the same)."""
        self.clock.advance(pause)
        now = self.clock.now
        for p in self.pairs.values():
            if p.status is PairStatus.PENDING and now >= p.expires_at:
                p.status = PairStatus.EXPIRED
            elif p.status is PairStatus.ACTIVE and any(
                now - self.seen[who] > GRACE for who in (p.inviter, p.invitee)
            ):
                p.status = PairStatus.ENDED

    def open_pair_of(self, who: str) -> int | None:
        found = [
            i for i, p in self.pairs.items() if p.status in OPEN and who in (p.inviter, p.invitee)
        ]
        assert len(found) <= 1
        return found[0] if found else None

    def some_pair(self, data: st.DataObject) -> int:
        if not self.pairs:
            return 10**9  # an id nobody has
        return data.draw(st.sampled_from(sorted(self.pairs)))

    # Rules ------------------------------------------------------------------------------

    @rule(inviter=agent, invitee=agent, pause=PAUSES)
    def invite(self, inviter: str, invitee: str, pause: float) -> None:
        self.later(pause)
        if inviter == invitee:
            return
        blocking = self.open_pair_of(inviter) or self.open_pair_of(invitee)
        try:
            pair = self.service.pair_invite(inviter, invitee, "work", workspace=self.ws)
        except Conflict as exc:
            assert blocking is not None and exc.details["pair"] == blocking, exc.message
            return
        assert blocking is None, f"invite {inviter}->{invitee} passed pair {blocking}"
        assert pair.id not in self.pairs and pair.status is PairStatus.PENDING
        self.seen[inviter] = self.clock.now
        self.pairs[pair.id] = ModelPair(
            inviter, invitee, PairStatus.PENDING, self.clock.now + INVITE
        )

    @precondition(lambda self: self.pairs)
    @rule(who=agent, accept=st.booleans(), pause=PAUSES, data=st.data())
    def answer(self, who: str, accept: bool, pause: float, data: st.DataObject) -> None:
        self.later(pause)
        pair_id = self.some_pair(data)
        m = self.pairs[pair_id]
        act = self.service.pair_accept if accept else self.service.pair_reject
        try:
            pair = act(pair_id, who, workspace=self.ws)
        except NotFound:
            assert who not in (m.inviter, m.invitee)
            return
        except Conflict as exc:
            assert m.status is not PairStatus.PENDING, exc.message
            return
        except Forbidden:
            assert who == m.inviter and m.status is PairStatus.PENDING
            return
        assert who == m.invitee and m.status is PairStatus.PENDING
        self.seen[who] = self.clock.now
        m.status = PairStatus.ACTIVE if accept else PairStatus.REJECTED
        assert pair.status is m.status

    @precondition(lambda self: self.pairs)
    @rule(who=agent, pause=PAUSES, data=st.data())
    def send(self, who: str, pause: float, data: st.DataObject) -> None:
        self.later(pause)
        pair_id = self.some_pair(data)
        m = self.pairs[pair_id]
        try:
            message = self.service.pair_send(pair_id, who, "hi", workspace=self.ws)
        except NotFound:
            assert who not in (m.inviter, m.invitee)
            return
        except Conflict as exc:
            assert m.status is not PairStatus.ACTIVE, exc.message
            return
        assert m.status is PairStatus.ACTIVE and who in (m.inviter, m.invitee)
        other = m.invitee if who == m.inviter else m.inviter
        assert message.recipients == [other] and message.meta["pair"] == pair_id
        self.seen[who] = self.clock.now

    @precondition(lambda self: self.pairs)
    @rule(who=agent, pause=PAUSES, data=st.data())
    def hangup(self, who: str, pause: float, data: st.DataObject) -> None:
        self.later(pause)
        pair_id = self.some_pair(data)
        m = self.pairs[pair_id]
        try:
            pair = self.service.pair_hangup(pair_id, who, workspace=self.ws)
        except NotFound:
            assert who not in (m.inviter, m.invitee)
            return
        except Conflict as exc:
            assert m.status not in OPEN, exc.message
            return
        assert m.status in OPEN and who in (m.inviter, m.invitee)
        self.seen[who] = self.clock.now
        m.status = PairStatus.ENDED
        assert pair.status is PairStatus.ENDED

    @rule(who=agent, pause=PAUSES)
    def go_offline(self, who: str, pause: float) -> None:
        """The agent's session ends (it says so). The server's sweeper runs first, as it
        does every few seconds: what time decided is written before the agent is seen."""
        self.later(pause)
        self.service.sweep_pairs(workspace=self.ws)
        self.service.heartbeat(who, workspace=self.ws, status="offline")
        self.seen[who] = self.clock.now

    @rule(pause=PAUSES)
    def sweep(self, pause: float) -> None:
        self.later(pause)
        self.service.sweep_pairs(workspace=self.ws)

    # What must always hold ----------------------------------------------------------------

    @invariant()
    def the_stored_pairs_match_the_model(self) -> None:
        self.later(0)  # an action may leave a pair due at once (accepting a silent inviter)
        found = {p.id: p.status for p in self.service.list_pairs(workspace=self.ws, limit=1000)}
        assert found == {i: m.status for i, m in self.pairs.items()}

    @invariant()
    def each_agent_is_in_at_most_one_open_pair(self) -> None:
        for who in AGENTS:
            mine = self.service.list_pairs(workspace=self.ws, viewer=who, limit=1000)
            assert sum(p.status in OPEN for p in mine) <= 1
            assert all(who in (p.inviter, p.invitee) for p in mine)


@pytest.mark.slow
def test_the_pair_lifecycle_follows_its_rules(service: Service, clock: Clock) -> None:
    class OnTheTestStore(PairMachine):
        pass

    OnTheTestStore.service = service
    OnTheTestStore.clock = clock
    run_state_machine_as_test(
        OnTheTestStore,
        settings=settings(database=None, deadline=None, max_examples=20, stateful_step_count=20),
    )
