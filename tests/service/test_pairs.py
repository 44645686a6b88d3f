"""Pairs: invite, accept, reject, pair messages, hang up; exclusivity (also under racing
invites), expiry and offline endings with the test's clock; who sees a pair; events."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from relaybus.errors import Conflict, Forbidden, InvalidInput, NotFound, RelayError
from relaybus.models import Pair, PairStatus
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Clock

INVITE = 600.0  # Settings.pair_invite_seconds default
GRACE = 300.0  # Settings.pair_offline_grace_seconds default


@pytest.fixture
def agents(service: Service) -> Service:
    for name in ("alice", "bob", "carol"):
        service.register(name)
    return service


def kinds(service: Service) -> list[str]:
    return [e.kind for e in service.events(kinds=["pair."])]


def test_an_invite_is_pending_and_reaches_the_invitee_inbox(agents: Service, clock: Clock) -> None:
    pair = agents.pair_invite("alice", "bob", "fix the flaky test")

    assert (pair.status, pair.inviter, pair.invitee) == (PairStatus.PENDING, "alice", "bob")
    assert pair.expires_at is not None and pair.expires_at.timestamp() == clock.now + INVITE
    [invite] = agents.inbox("bob")
    assert invite.id == pair.thread_id and invite.sender == "alice"
    assert invite.meta == {"pair": pair.id, "pair_step": "invited"}
    assert "fix the flaky test" in invite.body and f"pair accept {pair.id}" in invite.body
    assert kinds(agents) == ["pair.invited"]


def test_the_invitee_accepts_and_the_inviter_hears_it_on_the_pair_thread(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")

    active = agents.pair_accept(pair.id, "bob")

    assert active.status is PairStatus.ACTIVE and active.accepted_at is not None
    assert active.expires_at is None
    [answer] = agents.inbox("alice")
    assert answer.thread_id == pair.thread_id and answer.meta["pair_step"] == "accepted"
    assert kinds(agents) == ["pair.invited", "pair.accepted"]


def test_pair_messages_go_to_the_other_side_on_the_pair_thread(agents: Service) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "fix it").id, "bob")

    there = agents.pair_send(pair.id, "alice", "I take the parser")
    back = agents.pair_send(pair.id, "bob", "I take the tests")

    assert there.recipients == ["bob"] and back.recipients == ["alice"]
    assert there.thread_id == back.thread_id == pair.thread_id
    assert there.meta == {"pair": pair.id}
    thread = [m.body for m in agents.thread(pair.thread_id or 0, viewer="bob")]
    assert thread[-2:] == ["I take the parser", "I take the tests"]


def test_only_the_invitee_accepts_or_rejects(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")

    with pytest.raises(Forbidden, match="only bob"):
        agents.pair_accept(pair.id, "alice")
    with pytest.raises(Forbidden):
        agents.pair_reject(pair.id, "alice")
    with pytest.raises(NotFound):  # carol is not in it: the pair does not exist for her
        agents.pair_accept(pair.id, "carol")


def test_a_rejected_invite_is_final_and_tells_the_inviter(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")

    rejected = agents.pair_reject(pair.id, "bob")

    assert rejected.status is PairStatus.REJECTED and rejected.ended_by == "bob"
    assert agents.inbox("alice")[0].meta["pair_step"] == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        agents.pair_accept(pair.id, "bob")
    assert agents.pair_invite("alice", "bob", "again").status is PairStatus.PENDING
    assert kinds(agents) == ["pair.invited", "pair.rejected", "pair.invited"]


def test_either_side_hangs_up_and_ended_is_final(agents: Service) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "fix it").id, "bob")

    ended = agents.pair_hangup(pair.id, "bob")

    assert (ended.status, ended.reason, ended.ended_by) == (PairStatus.ENDED, "hangup", "bob")
    for act in (
        lambda: agents.pair_send(pair.id, "alice", "still there?"),
        lambda: agents.pair_hangup(pair.id, "alice"),
        lambda: agents.pair_accept(pair.id, "bob"),
    ):
        with pytest.raises(Conflict, match="ended"):
            act()
    [event] = agents.events(kinds=["pair.ended"])
    assert event.data["reason"] == "hangup" and event.agent_id == "bob"


def test_the_inviter_takes_a_pending_invite_back_by_hanging_up(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")

    assert agents.pair_hangup(pair.id, "alice").status is PairStatus.ENDED
    assert agents.pair_invite("bob", "alice", "my turn").status is PairStatus.PENDING


def test_messages_go_only_while_the_pair_is_active(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")

    with pytest.raises(Conflict, match="pending"):
        agents.pair_send(pair.id, "alice", "hello?")


def test_a_second_invite_is_a_conflict_naming_the_blocking_pair(agents: Service) -> None:
    first = agents.pair_invite("alice", "bob", "fix it")

    with pytest.raises(Conflict) as by_inviter:
        agents.pair_invite("alice", "carol", "something else")
    with pytest.raises(Conflict) as to_invitee:
        agents.pair_invite("carol", "bob", "me too")

    for refused in (by_inviter.value, to_invitee.value):
        assert refused.details["pair"] == first.id
        assert f"pair {first.id}" in refused.message


def test_bad_invites_are_refused(agents: Service) -> None:
    with pytest.raises(InvalidInput):
        agents.pair_invite("alice", "alice", "myself")
    with pytest.raises(InvalidInput):
        agents.pair_invite("alice", "bob", "  ")
    with pytest.raises(NotFound, match="dave"):
        agents.pair_invite("alice", "dave", "nobody")
    assert agents.list_pairs() == []


def test_a_pending_invite_expires_and_tells_the_inviter(agents: Service, clock: Clock) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")
    clock.advance(INVITE - 1)
    assert agents.get_pair(pair.id).status is PairStatus.PENDING

    clock.advance(1)

    # read lazily: nothing swept yet, the read settles it
    expired = agents.get_pair(pair.id, viewer="alice")
    assert (expired.status, expired.reason) == (PairStatus.EXPIRED, "expired")
    assert agents.inbox("alice")[-1].meta["pair_step"] == "expired"
    with pytest.raises(Conflict, match="expired"):
        agents.pair_accept(pair.id, "bob")
    assert agents.pair_invite("carol", "bob", "now").status is PairStatus.PENDING
    [event] = agents.events(kinds=["pair.ended"])
    assert event.data["reason"] == "expired"


def test_an_expired_invite_frees_both_agents_for_a_new_invite(
    agents: Service, clock: Clock
) -> None:
    agents.pair_invite("alice", "bob", "fix it")
    clock.advance(INVITE)

    # no read in between: the invite settles the old pair first
    assert agents.pair_invite("bob", "alice", "my turn").status is PairStatus.PENDING


def test_the_sweep_ends_a_pair_whose_agent_stayed_offline(agents: Service, clock: Clock) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "fix it").id, "bob")
    agents.heartbeat("bob", status="offline")
    clock.advance(GRACE)
    agents.heartbeat("alice")
    assert agents.sweep_pairs() == 0  # offline, but not past the grace period yet

    clock.advance(1)
    agents.heartbeat("alice")

    assert agents.sweep_pairs() == 1
    ended = agents.get_pair(pair.id)
    assert (ended.status, ended.reason) == (PairStatus.ENDED, "offline")
    notice = agents.inbox("alice")[0]  # newest first
    assert notice.meta["pair_step"] == "offline" and "bob stayed offline" in notice.body
    [event] = agents.events(kinds=["pair.ended"])
    assert event.data["offline"] == "bob" and event.agent_id is None
    assert agents.sweep_pairs() == 0  # idempotent


def test_a_pair_of_an_agent_unseen_past_the_grace_ends_on_the_next_pair_call(
    agents: Service, clock: Clock
) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "fix it").id, "bob")
    clock.advance(GRACE + 1)  # bob is stale (past stale_ttl) and unseen past the grace

    with pytest.raises(Conflict, match="offline"):
        agents.pair_send(pair.id, "alice", "bob?")

    # the refusal rolled the ending back with it, yet the pair reads ended all the same
    assert agents.get_pair(pair.id).status is PairStatus.ENDED
    assert agents.pair_invite("alice", "carol", "next").status is PairStatus.PENDING


def test_a_pair_whose_agent_was_unregistered_ends(agents: Service) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "fix it").id, "bob")

    agents.unregister("bob")

    assert agents.get_pair(pair.id).reason == "offline"


def test_only_the_two_agents_and_admin_see_a_pair_and_its_messages(agents: Service) -> None:
    pair = agents.pair_accept(agents.pair_invite("alice", "bob", "secret plan").id, "bob")
    said = agents.pair_send(pair.id, "alice", "the plan")

    assert [p.id for p in agents.list_pairs(viewer="alice")] == [pair.id]
    assert [p.id for p in agents.list_pairs(viewer="bob")] == [pair.id]
    assert [p.id for p in agents.list_pairs()] == [pair.id]
    assert agents.list_pairs(viewer="carol") == []
    with pytest.raises(NotFound):
        agents.get_pair(pair.id, viewer="carol")
    with pytest.raises(NotFound):
        agents.get_message(said.id, viewer="carol")
    with pytest.raises(NotFound):
        agents.pair_send(pair.id, "carol", "let me in")
    assert agents.inbox("carol") == []


def test_pairs_list_filters_by_status(agents: Service) -> None:
    first = agents.pair_invite("alice", "bob", "one")
    agents.pair_hangup(first.id, "alice")
    second = agents.pair_invite("alice", "carol", "two")

    assert [p.id for p in agents.list_pairs(status="pending")] == [second.id]
    assert [p.id for p in agents.list_pairs(status=PairStatus.ENDED)] == [first.id]
    assert [p.id for p in agents.list_pairs()] == [second.id, first.id]
    with pytest.raises(InvalidInput):
        agents.list_pairs(status="asleep")


def test_a_stale_epoch_cannot_act_on_a_pair(agents: Service) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")
    agents.register("bob")  # a new instance: epoch 2

    with pytest.raises(Conflict, match="stale epoch"):
        agents.pair_accept(pair.id, "bob", epoch=1)


RACERS = 8


@pytest.mark.parametrize("racing", ["inviters", "invitees"])
def test_of_eight_racing_invites_exactly_one_wins(service: Service, racing: str) -> None:
    # "inviters": eight agents invite one target; "invitees": one agent invites eight.
    names = [f"a{i}" for i in range(RACERS)]
    for name in (*names, "hub"):
        service.register(name)
    start = threading.Barrier(RACERS)
    outcomes: list[Pair | RelayError] = [Conflict("not run")] * RACERS

    def invite(i: int) -> None:
        inviter, invitee = (names[i], "hub") if racing == "inviters" else ("hub", names[i])
        start.wait()
        try:
            outcomes[i] = service.pair_invite(inviter, invitee, f"race {i}")
        except RelayError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=invite, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    won = [o for o in outcomes if isinstance(o, Pair)]
    lost = [o for o in outcomes if not isinstance(o, Pair)]
    assert len(won) == 1, outcomes
    assert all(isinstance(e, Conflict) and e.details["pair"] == won[0].id for e in lost)
    assert [p.id for p in service.list_pairs()] == [won[0].id]


def test_listing_by_status_counts_an_invite_past_its_expiry_as_expired(
    agents: Service, clock: Clock
) -> None:
    pair = agents.pair_invite("alice", "bob", "fix it")
    clock.advance(INVITE)

    assert [p.id for p in agents.list_pairs(status="expired", viewer="bob")] == [pair.id]
    assert agents.list_pairs(status="pending") == []
