"""What ``relaybus demo`` must prove, checked over plain observations.

:func:`check_invariants` is a pure function of an :class:`Observations`
value: the agents' own reports plus what the relay recorded (task history,
thread, inboxes) and how each process ended. Keeping it pure lets a test feed
it a doctored observation set (two claim winners, a lost broadcast) and see
the failure, with no process or database involved.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Report = Mapping[str, Any]

#: The task's history kinds: created, claimed, at least one progress report, done.
HISTORY_RE = re.compile(r"created claimed( (in_progress|progress))+ done")


@dataclass(frozen=True)
class Invariant:
    """One checked property: its ``name``, whether it held, and a human ``detail``."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Observations:
    """Everything the demo saw, as JSON-able data.

    Attributes:
        author, reviewers: the agent ids.
        reports: each agent's reports in the order it printed them (see
            :mod:`relaybus.workflows.demo_agent`), e.g. ``{"event":
            "claim_lost", "holder": "bob", ...}``.
        exit_codes: each agent process's exit status; ``None`` when the demo
            killed it (it outlived the timeout, or another agent had failed).
        task_id, task_message_id: the review task and the message that created
            it (``None`` when it was never posted).
        task_status: the task's final status.
        task_history: the task's history as ``[kind, agent_id]`` pairs, oldest first.
        thread: the task message's thread, oldest first, as dicts with ``id``,
            ``sender``, ``reply_to`` and ``thread_id``.
        inboxes: each agent's delivered message ids (read or not), one per
            delivery row, as read back from the relay.
    """

    author: str
    reviewers: Sequence[str]
    reports: Mapping[str, Sequence[Report]]
    exit_codes: Mapping[str, int | None]
    task_id: int | None = None
    task_message_id: int | None = None
    task_status: str | None = None
    task_history: Sequence[Sequence[str | None]] = ()
    thread: Sequence[Mapping[str, Any]] = ()
    inboxes: Mapping[str, Sequence[int]] = field(default_factory=dict)

    @property
    def agents(self) -> list[str]:
        return [self.author, *self.reviewers]

    def reported(self, agent: str, event: str) -> list[Report]:
        """``agent``'s reports of kind ``event``, in order."""
        return [r for r in self.reports.get(agent, ()) if r.get("event") == event]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observations:
        """The inverse of :meth:`to_dict` (e.g. from the demo's ``--json`` output)."""
        return cls(**dict(data))


def winner(obs: Observations) -> str | None:
    """The one reviewer that reported winning the claim, or ``None`` if not exactly one."""
    won = [r for r in obs.reviewers if obs.reported(r, "claim_won")]
    return won[0] if len(won) == 1 else None


def check_invariants(obs: Observations) -> list[Invariant]:
    """Check every property the demo promises; the demo passes only if all hold."""
    champion = winner(obs)
    return [
        _one_winner(obs),
        _losers_saw_holder(obs, champion),
        _history(obs),
        _reply_in_thread(obs, champion),
        _author_got_reply(obs, champion),
        _broadcast_reached_all(obs),
        _children_exited(obs),
        _no_double_delivery(obs),
    ]


def exit_code(invariants: Sequence[Invariant]) -> int:
    """The demo's exit status: 0 if every invariant held (and there were some), else 1."""
    return 0 if invariants and all(inv.ok for inv in invariants) else 1


def _one_winner(obs: Observations) -> Invariant:
    name = "exactly one reviewer won the claim"
    won = [r for r in obs.reviewers if obs.reported(r, "claim_won")]
    claimed = [agent for kind, agent in obs.task_history if kind == "claimed"]
    if len(won) == 1 and claimed == won:
        others = [r for r in obs.reviewers if r != won[0]]
        lost = f"; {', '.join(others)} lost" if others else ""
        return Invariant(name, True, f"{won[0]} won{lost}")
    says = ", ".join(won) or "nobody"
    history = ", ".join(str(a) for a in claimed) or "nobody"
    return Invariant(
        name, False, f"won by their own account: {says}; claimed in history: {history}"
    )


def _losers_saw_holder(obs: Observations, champion: str | None) -> Invariant:
    name = "the other reviewers saw the winner as holder"
    if champion is None:
        return Invariant(name, False, "there is no single winner to have seen")
    seen, wrong = [], []
    for reviewer in obs.reviewers:
        if reviewer == champion:
            continue
        lost = obs.reported(reviewer, "claim_lost")
        holder = lost[-1].get("holder") if lost else None
        if holder == champion:
            seen.append(reviewer)
        else:
            wrong.append(f"{reviewer} saw {holder}" if lost else f"{reviewer} never lost a claim")
    if wrong:
        return Invariant(name, False, "; ".join(wrong))
    return Invariant(name, True, f"{', '.join(seen) or 'nobody else'} saw {champion} holding it")


def _history(obs: Observations) -> Invariant:
    name = "task history is created → claimed → progress… → done"
    kinds = [str(kind) for kind, _ in obs.task_history]
    shown = " → ".join(kinds) or "no history"
    ok = bool(HISTORY_RE.fullmatch(" ".join(kinds))) and obs.task_status == "done"
    return Invariant(name, ok, f"{shown} (status {obs.task_status or 'unknown'})")


def _replies(obs: Observations, champion: str | None) -> list[Mapping[str, Any]]:
    root = obs.task_message_id
    return [
        m
        for m in obs.thread
        if root is not None
        and m.get("reply_to") == root
        and m.get("thread_id") == root
        and m.get("sender") == champion
    ]


def _reply_in_thread(obs: Observations, champion: str | None) -> Invariant:
    name = "the winner's reply is in the task message's thread"
    if obs.task_message_id is None:
        return Invariant(name, False, "the task was never posted")
    if champion is None:
        return Invariant(name, False, "there is no single winner to reply")
    replies = _replies(obs, champion)
    where = f"in thread #{obs.task_message_id}"
    if len(replies) == 1:
        return Invariant(name, True, f"#{replies[0]['id']} from {champion} {where}")
    return Invariant(name, False, f"{len(replies)} replies from {champion} {where}")


def _author_got_reply(obs: Observations, champion: str | None) -> Invariant:
    name = "the author got the reply"
    reply_ids = [m.get("id") for m in _replies(obs, champion)]
    got = [r.get("message_id") for r in obs.reported(obs.author, "got_reply")]
    inbox = set(obs.inboxes.get(obs.author, ()))
    if reply_ids and got and got[-1] in reply_ids and got[-1] in inbox:
        return Invariant(name, True, f"{obs.author} received #{got[-1]} from {champion}")
    said = ", ".join(f"#{i}" for i in got) or "nothing"
    expected = ", ".join(f"#{i}" for i in reply_ids) or "none"
    return Invariant(
        name, False, f"{obs.author} reported getting {said}; the winner's replies: {expected}"
    )


def _broadcast_reached_all(obs: Observations) -> Invariant:
    name = "every reviewer got the broadcast"
    sent = obs.reported(obs.author, "broadcast")
    if not sent:
        return Invariant(name, False, f"{obs.author} never broadcast")
    broadcast_id = sent[-1].get("message_id")
    missing = [
        r
        for r in obs.reviewers
        if broadcast_id not in [g.get("message_id") for g in obs.reported(r, "got_broadcast")]
    ]
    if missing:
        return Invariant(name, False, f"#{broadcast_id} never reached {', '.join(missing)}")
    return Invariant(name, True, f"#{broadcast_id} reached all {len(obs.reviewers)} reviewers")


def _children_exited(obs: Observations) -> Invariant:
    name = "every agent process exited 0"
    bad = []
    for agent in obs.agents:
        code = obs.exit_codes.get(agent)
        if code == 0:
            continue
        errors = obs.reported(agent, "error")
        why = f": {errors[-1].get('message')}" if errors else ""
        ended = "was killed by the demo" if code is None else f"exited {code}"
        bad.append(f"{agent} {ended}{why}")
    if bad:
        return Invariant(name, False, "; ".join(bad))
    return Invariant(name, True, f"all {len(obs.agents)} exited 0")


def _no_double_delivery(obs: Observations) -> Invariant:
    name = "no message was delivered twice"
    problems, counts = [], []
    for agent in obs.agents:
        inbox = list(obs.inboxes.get(agent, ()))
        received = [int(r.get("message_id", -1)) for r in obs.reported(agent, "received")]
        twice_stored = sorted(i for i, n in Counter(inbox).items() if n > 1)
        twice_received = sorted(i for i, n in Counter(received).items() if n > 1)
        if twice_stored:
            problems.append(f"{agent} has {twice_stored} twice in its inbox")
        if twice_received:
            problems.append(f"{agent} received {twice_received} twice")
        if set(received) != set(inbox):
            problems.append(f"{agent} received {sorted(received)} but has {sorted(inbox)}")
        counts.append(f"{agent} {len(inbox)}")
    if problems:
        return Invariant(name, False, "; ".join(problems))
    return Invariant(name, True, f"deliveries, each received once: {', '.join(counts)}")
