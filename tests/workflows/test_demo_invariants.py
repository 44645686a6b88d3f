"""The demo's invariant checker, fed observation sets by hand: a complete run
passes, and each kind of doctored run fails the invariant it breaks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from relaybus.workflows.demo import Observations, check_invariants, exit_code
from relaybus.workflows.demo_invariants import Invariant, Report, winner

REVIEWERS = ("bob", "carol", "dave")
TASK_MESSAGE, REPLY, BROADCAST = 1, 2, 3


def _r(agent: str, event: str, **data: Any) -> dict[str, Any]:
    return {"agent": agent, "event": event, "t": 0.0, **data}


def _received(agent: str, *ids: int) -> list[dict[str, Any]]:
    return [_r(agent, "received", message_id=i) for i in ids]


def complete_run() -> Observations:
    """What a run where bob wins looks like."""
    reports: dict[str, list[dict[str, Any]]] = {
        "alice": [
            _r("alice", "posted", message_id=TASK_MESSAGE, task_id=1),
            *_received("alice", REPLY),
            _r("alice", "got_reply", message_id=REPLY, sender="bob"),
            _r("alice", "broadcast", message_id=BROADCAST, recipients=list(REVIEWERS)),
        ],
        "bob": [
            *_received("bob", TASK_MESSAGE),
            _r("bob", "claim_won", task_id=1),
            _r("bob", "replied", message_id=REPLY),
            *_received("bob", BROADCAST),
            _r("bob", "got_broadcast", message_id=BROADCAST),
        ],
    }
    for loser in ("carol", "dave"):
        reports[loser] = [
            *_received(loser, TASK_MESSAGE),
            _r(loser, "claim_lost", task_id=1, holder="bob"),
            *_received(loser, BROADCAST),
            _r(loser, "got_broadcast", message_id=BROADCAST),
        ]
    return Observations(
        author="alice",
        reviewers=list(REVIEWERS),
        reports=reports,
        exit_codes={a: 0 for a in ("alice", *REVIEWERS)},
        task_id=1,
        task_message_id=TASK_MESSAGE,
        task_status="done",
        task_history=[
            ["created", "alice"],
            ["claimed", "bob"],
            ["in_progress", "bob"],
            ["progress", "bob"],
            ["done", "alice"],
        ],
        thread=[
            {"id": TASK_MESSAGE, "sender": "alice", "reply_to": None, "thread_id": TASK_MESSAGE},
            {"id": REPLY, "sender": "bob", "reply_to": TASK_MESSAGE, "thread_id": TASK_MESSAGE},
        ],
        inboxes={
            "alice": [REPLY],
            **{r: [TASK_MESSAGE, BROADCAST] for r in REVIEWERS},
        },
    )


def with_reports(obs: Observations, agent: str, reports: Sequence[Report]) -> Observations:
    return dataclasses.replace(obs, reports={**obs.reports, agent: reports})


def verdicts(obs: Observations) -> dict[str, Invariant]:
    return {inv.name: inv for inv in check_invariants(obs)}


def broken(obs: Observations) -> set[str]:
    return {name for name, inv in verdicts(obs).items() if not inv.ok}


def test_complete_run_holds_every_invariant() -> None:
    invariants = check_invariants(complete_run())

    assert [inv.name for inv in invariants if not inv.ok] == []
    assert len(invariants) == 8
    assert exit_code(invariants) == 0
    assert winner(complete_run()) == "bob"


def test_two_claim_winners_fail_the_demo() -> None:
    obs = complete_run()
    carol = [r for r in obs.reports["carol"] if r["event"] != "claim_lost"]
    doctored = with_reports(obs, "carol", [*carol, _r("carol", "claim_won", task_id=1)])

    invariants = check_invariants(doctored)

    assert broken(doctored) == {
        "exactly one reviewer won the claim",
        "the other reviewers saw the winner as holder",
        "the winner's reply is in the task message's thread",
        "the author got the reply",
    }
    assert "bob, carol" in verdicts(doctored)["exactly one reviewer won the claim"].detail
    assert exit_code(invariants) == 1
    assert winner(doctored) is None


def test_claim_won_without_a_claim_in_the_task_history_is_not_a_win() -> None:
    obs = complete_run()
    history = [step for step in obs.task_history if step[0] != "claimed"]

    assert "exactly one reviewer won the claim" in broken(
        dataclasses.replace(obs, task_history=history)
    )


def test_loser_that_saw_another_holder_breaks_the_holder_invariant() -> None:
    obs = complete_run()
    dave = [
        _r("dave", "claim_lost", task_id=1, holder="carol") if r["event"] == "claim_lost" else r
        for r in obs.reports["dave"]
    ]
    doctored = with_reports(obs, "dave", dave)

    assert broken(doctored) == {"the other reviewers saw the winner as holder"}
    assert (
        "dave saw carol"
        in verdicts(doctored)["the other reviewers saw the winner as holder"].detail
    )


def test_loser_that_never_tried_to_claim_breaks_the_holder_invariant() -> None:
    obs = complete_run()
    carol = [r for r in obs.reports["carol"] if r["event"] != "claim_lost"]

    assert broken(with_reports(obs, "carol", carol)) == {
        "the other reviewers saw the winner as holder"
    }


def test_task_never_marked_done_breaks_the_history_invariant() -> None:
    obs = complete_run()
    doctored = dataclasses.replace(
        obs, task_history=list(obs.task_history)[:-1], task_status="in_progress"
    )

    assert broken(doctored) == {"task history is created → claimed → progress… → done"}


def test_history_without_progress_breaks_the_history_invariant() -> None:
    obs = complete_run()
    history = [s for s in obs.task_history if s[0] not in ("in_progress", "progress")]

    assert broken(dataclasses.replace(obs, task_history=history)) == {
        "task history is created → claimed → progress… → done"
    }


def test_reply_outside_the_task_thread_breaks_the_thread_invariant() -> None:
    obs = complete_run()
    thread = [m for m in obs.thread if m["id"] != REPLY]

    assert broken(dataclasses.replace(obs, thread=thread)) == {
        "the winner's reply is in the task message's thread",
        "the author got the reply",
    }


def test_author_who_never_got_the_reply_breaks_its_invariant() -> None:
    obs = complete_run()
    alice = [r for r in obs.reports["alice"] if r["event"] not in ("got_reply", "received")]
    doctored = dataclasses.replace(
        with_reports(obs, "alice", alice), inboxes={**obs.inboxes, "alice": []}
    )

    assert broken(doctored) == {"the author got the reply"}


def test_reviewer_missing_the_broadcast_breaks_the_broadcast_invariant() -> None:
    obs = complete_run()
    dave = [r for r in obs.reports["dave"] if r["event"] != "got_broadcast"]
    doctored = with_reports(obs, "dave", dave)

    assert broken(doctored) == {"every reviewer got the broadcast"}
    assert "dave" in verdicts(doctored)["every reviewer got the broadcast"].detail


def test_killed_or_failed_agent_breaks_the_exit_invariant() -> None:
    obs = complete_run()
    doctored = dataclasses.replace(obs, exit_codes={**obs.exit_codes, "carol": None, "dave": 1})
    doctored = with_reports(
        doctored, "dave", [*obs.reports["dave"], _r("dave", "error", message="boom")]
    )

    detail = verdicts(doctored)["every agent process exited 0"].detail
    assert broken(doctored) == {"every agent process exited 0"}
    assert "carol was killed by the demo" in detail
    assert "dave exited 1: boom" in detail


def test_message_received_twice_breaks_the_delivery_invariant() -> None:
    obs = complete_run()
    doctored = with_reports(obs, "carol", [*obs.reports["carol"], *_received("carol", BROADCAST)])

    assert broken(doctored) == {"no message was delivered twice"}


def test_duplicate_delivery_row_breaks_the_delivery_invariant() -> None:
    obs = complete_run()
    inboxes: Mapping[str, Sequence[int]] = {
        **obs.inboxes,
        "bob": [TASK_MESSAGE, BROADCAST, BROADCAST],
    }

    assert broken(dataclasses.replace(obs, inboxes=inboxes)) == {"no message was delivered twice"}


def test_delivered_but_never_received_breaks_the_delivery_invariant() -> None:
    obs = complete_run()
    inboxes = {**obs.inboxes, "dave": [TASK_MESSAGE, BROADCAST, 99]}

    assert broken(dataclasses.replace(obs, inboxes=inboxes)) == {"no message was delivered twice"}


def test_observations_survive_a_json_round_trip() -> None:
    obs = complete_run()

    again = Observations.from_dict(json.loads(json.dumps(obs.to_dict())))

    assert check_invariants(again) == check_invariants(obs)
    assert exit_code(check_invariants(again)) == 0


def test_no_invariants_is_not_a_pass() -> None:
    assert exit_code([]) == 1
