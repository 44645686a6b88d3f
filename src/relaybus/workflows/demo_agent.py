"""One agent process of ``relaybus demo`` and of ``examples/review.yaml``: a worker.

The workflow file (:mod:`relaybus.workflows.demo_workflow` loads the copy shipped in
the package) runs each agent as ``python -m relaybus.workflows.demo_agent worker``,
named by ``RELAYBUS_AGENT`` (registered for it beforehand, with its tags and
capabilities, by the spawning relay or by the demo) on the relay that
``RELAYBUS_DIR`` or ``RELAYBUS_URL`` names::

    python -m relaybus.workflows.demo_agent worker [NAME] [--timeout S]

A worker reads its inbox: each task offered to it (by name, or to a capability it
has) it tries to claim; losing the race, it reports who holds the task. Winning, it
reports progress and finishes the task with :func:`answer`: a review first replies
in the task's thread to the author (``tag:author``) and approves; a merge, done,
broadcasts thanks. It exits after the thanks (sent or received), on SIGTERM (the
runner released it), or at its deadline.

Each acts through the public SDK only, and prints one JSON object per line on
stdout for every thing it observed: ``{"agent": "bob", "event": "claim_lost",
"t": 1718000000.123, ...}`` (``t`` in Unix seconds). The demo renders some of these
and checks its invariants against them and against the relay's own records. Exit
status: 0 when the agent played its part, 1 when a relay call failed or something
it waited for did not come within ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._httpx import skip_httpx_cli
from ..client import AgentHandle, Relay
from ..errors import Conflict, Forbidden, NotFound, RelayError
from ..models import Message, Task

REVIEWER_NAMES = (
    "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
)  # fmt: skip
CAPABILITY = "review"
PROGRESS = ((30, "reading the diff"), (80, "running tests"))
REPLY_BODY = "LGTM: the session split is clean and the auth tests pass"
BROADCAST_BODY = "thanks all, PR #42 merged"


def reviewer_names(count: int) -> list[str]:
    """``count`` reviewer ids: bob, carol, dave… then reviewer-19, reviewer-20…"""
    return [
        REVIEWER_NAMES[i] if i < len(REVIEWER_NAMES) else f"reviewer-{i + 1}" for i in range(count)
    ]


class Released(Exception):
    """SIGTERM: the workflow runner released this worker."""


def _released(signum: int, frame: object) -> None:
    raise Released


class DemoTimeout(TimeoutError):
    """Something this agent waits for did not come before its deadline."""


class Reporter:
    """Prints this agent's observations, one JSON object per line on stdout."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def __call__(self, event: str, **data: Any) -> None:
        line = {"agent": self.agent, "event": event, "t": time.time(), **data}
        print(json.dumps(line, ensure_ascii=False), flush=True)


class DemoInbox:
    """An agent's received messages, taken out in the order its script wants them.

    Every message :meth:`next` receives is reported once (``received``) and
    marked read; messages not wanted yet stay queued for a later :meth:`next`.
    """

    def __init__(self, me: AgentHandle, report: Reporter, deadline: float) -> None:
        self.me = me
        self.report = report
        self.deadline = deadline  # time.monotonic() seconds
        self.pending: list[Message] = []

    def next(self, want: Callable[[Message], bool], what: str) -> Message:
        """The first received message ``want`` accepts, waiting for mail as needed.

        Raises:
            DemoTimeout: none arrived before the deadline (``what`` names it).
            RelayError: a relay call failed.
        """
        while True:
            for index, message in enumerate(self.pending):
                if want(message):
                    return self.pending.pop(index)
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise DemoTimeout(f"{self.me.id} got no {what} before its timeout")
            for message in self.me.wait(remaining, mark_read=True):
                self.report(
                    "received",
                    message_id=message.id,
                    sender=message.sender,
                    to=message.to,
                    reply_to=message.reply_to,
                )
                self.pending.append(message)


#: A worker's answers (see :func:`answer`).
WRITTEN = "PR #42 written: session handling moved to src/auth/sessions.py"
APPROVED = "APPROVED: the session split is clean and the auth tests pass"
MERGED = "merged PR #42; thanks all"
#: Where a reviewer's reply goes: the author (its tag in the workflow file).
AUTHOR_TARGET = "tag:author"
#: The meta of the author's thanks: the message after which every worker exits.
THANKS_META = {"demo": "thanks"}


def answer(task: Task) -> str:
    """A worker's result: a review (a task offered to ``cap:review``) approves, a task
    that asks to merge merges, anything else is written."""
    if task.target == f"cap:{CAPABILITY}":
        return APPROVED
    if (task.body or "").lstrip().lower().startswith("merge"):
        return MERGED
    return WRITTEN


def _anything(message: Message) -> bool:
    return True


def run_worker(relay: Relay, name: str, deadline: float, report: Reporter) -> None:
    """Take the tasks offered to this agent (by name or capability) from its inbox
    (:func:`take`) until the author's thanks, sent or received (or until released:
    SIGTERM). Raises DemoTimeout at ``deadline`` (monotonic seconds), RelayError."""
    me = relay.agent(name) if os.environ.get("RELAYBUS_AGENT") == name else relay.register(name)
    report("ready", epoch=me.epoch)
    mailbox = DemoInbox(me, report, deadline)
    while True:
        message = mailbox.next(_anything, "thanks for the merge")
        if message.task_id is not None:
            if take(relay, me, message, report):
                break
        elif message.to == "broadcast" and message.meta.get("demo") == THANKS_META["demo"]:
            report("got_broadcast", message_id=message.id, sender=message.sender)
            break
        elif message.reply_to is not None:
            report("got_reply", message_id=message.id, sender=message.sender,
                   thread_id=message.thread_id)  # fmt: skip
    me.update(status="offline")


def take(relay: Relay, me: AgentHandle, offer: Message, report: Reporter) -> bool:
    """Race for the task ``offer`` (its claimable message) offers: a lost claim is
    reported with the holder; a won one gets progress, a reply to the author in the
    task's thread for a review, and its :func:`answer` as result. Returns whether this
    finished the merge (and broadcast the thanks)."""
    task_id = offer.task_id
    assert task_id is not None
    report("got_task", message_id=offer.id, task_id=task_id)
    try:
        task = me.claim(task_id)
    except Conflict as exc:
        # A claim that comes after the winner finished is refused for the task being
        # finished, not held; the task still names who held it.
        holder = exc.details.get("holder") or relay.task(task_id).assignee
        status = exc.details.get("status", "claimed")
        report("claim_lost", task_id=task_id, holder=holder, status=status, reason=exc.message)
        return False
    except Forbidden as exc:
        report("claim_lost", task_id=task_id, reason=exc.message)
        return False
    expires = task.lease_expires_at.timestamp() if task.lease_expires_at else None
    report("claim_won", task_id=task_id, lease_expires_at=expires)
    for percent, note in PROGRESS:
        me.update_task(task_id, progress=percent, note=note)
        report("progress", task_id=task_id, progress=percent, note=note)
    result = answer(task)
    if result == APPROVED:
        try:
            reply = me.reply(offer, REPLY_BODY, to=AUTHOR_TARGET)
        except NotFound as exc:  # no author here (a relay without the file's alice)
            report("reply_skipped", task_id=task_id, reason=exc.message)
        else:
            report("replied", message_id=reply.id, thread_id=reply.thread_id, to=reply.to)
    done = me.update_task(task_id, status="done", result=result)
    report("closed", task_id=task_id, status=done.status.value, result=result)
    if result != MERGED:
        return False
    try:
        thanks = me.send("broadcast", BROADCAST_BODY, meta=THANKS_META)
    except NotFound:  # nobody else to thank
        report("broadcast", message_id=None, recipients=[])
    else:
        report("broadcast", message_id=thanks.id, recipients=thanks.recipients)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run one demo agent; returns the exit status (0 played its part, 1 failed)."""
    parser = argparse.ArgumentParser(prog="python -m relaybus.workflows.demo_agent")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("name", nargs="?", default=None, help="the agent id (RELAYBUS_AGENT)")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait in all (3600)"
    )
    args = parser.parse_args(argv)
    if args.name is None:
        args.name = os.environ.get("RELAYBUS_AGENT")
        if not args.name:
            parser.error("give the agent id (or set RELAYBUS_AGENT)")
    report = Reporter(args.name)
    deadline = time.monotonic() + args.timeout
    # Over a server: spare httpx importing its own command line, half this process's
    # start-up (see relaybus._httpx).
    skip_httpx_cli()
    try:
        with Relay.open() as relay:  # RELAYBUS_DIR or RELAYBUS_URL names the relay
            signal.signal(signal.SIGTERM, _released)
            run_worker(relay, args.name, deadline, report)
    except Released:
        return 0
    except (RelayError, DemoTimeout) as exc:
        report("error", message=str(exc), error=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
