"""One agent process of ``relaybus demo``: the author or a reviewer.

The demo orchestrator (:mod:`relaybus.workflows.demo`) starts one process per
agent with ``RELAYBUS_DIR`` pointing at the demo's relay (or, with ``--server``,
``RELAYBUS_URL`` at the demo's relay server: the same code then runs over HTTP)::

    python -m relaybus.workflows.demo_agent author alice --reviewers bob,carol,dave
    python -m relaybus.workflows.demo_agent reviewer bob --author alice
    python -m relaybus.workflows.demo_agent worker [NAME]   # examples/review.yaml

Each acts through the public SDK only, and prints one JSON object per line on
stdout for every thing it observed: ``{"agent": "bob", "event": "claim_lost",
"t": 1718000000.123, ...}`` (``t`` in Unix seconds). The orchestrator renders
some of these and checks the demo's invariants against them and against the
relay's own records. Exit status: 0 when the agent played its part, 1 when a
relay call failed or something it waited for did not come within ``--timeout``.
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
from ..errors import Conflict, Forbidden, RelayError
from ..models import Message, Task

AUTHOR = "alice"
REVIEWER_NAMES = (
    "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
)  # fmt: skip
CAPABILITY = "review"
SUBJECT = "Review PR #42: auth refactor"
TASK_BODY = (
    "PR #42 moves session handling out of src/auth/legacy.py into src/auth/sessions.py.\n"
    "Claim this task if you take the review; reply in this thread with your verdict."
)
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


def wait_for_reviewers(relay: Relay, reviewers: set[str], deadline: float) -> None:
    """Block until every agent in ``reviewers`` has registered with the review
    capability, reading the event log (no polling loop of our own).

    Raises:
        DemoTimeout: some never registered before ``deadline`` (monotonic seconds).
    """
    missing = set(reviewers)
    cursor = 0
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoTimeout(f"reviewers never registered: {', '.join(sorted(missing))}")
        for event in relay.wait_events(remaining, since=cursor, limit=1000):
            cursor = event.id
            if event.kind == "agent.registered" and CAPABILITY in event.data.get(
                "capabilities", []
            ):
                missing.discard(event.agent_id or "")


def run_author(
    relay: Relay, name: str, reviewers: Sequence[str], deadline: float, report: Reporter
) -> None:
    """Post the review task, wait for the verdict, close the task, thank everyone."""
    me = relay.register(name, label="author")
    report("registered", epoch=me.epoch)
    wait_for_reviewers(relay, set(reviewers), deadline)
    report("reviewers_ready", reviewers=sorted(reviewers))
    posted = me.send(f"cap:{CAPABILITY}", TASK_BODY, subject=SUBJECT, claimable=True)
    assert posted.task_id is not None  # claimable=True always creates a task
    report("posted", message_id=posted.id, task_id=posted.task_id, recipients=posted.recipients)
    mailbox = DemoInbox(me, report, deadline)
    reply = mailbox.next(
        lambda m: m.thread_id == posted.id and m.reply_to is not None, "reply to the review task"
    )
    report("got_reply", message_id=reply.id, sender=reply.sender, thread_id=reply.thread_id)
    task = me.update_task(
        posted.task_id, status="done", result=f"approved by {reply.sender}; merged"
    )
    report("closed", task_id=task.id, status=task.status.value)
    thanks = me.send("broadcast", BROADCAST_BODY)
    report("broadcast", message_id=thanks.id, recipients=thanks.recipients)
    me.update(status="offline")


def run_reviewer(relay: Relay, name: str, author: str, deadline: float, report: Reporter) -> None:
    """Race for the review task; the winner reviews and replies, the others say
    who holds it; everyone waits for the author's broadcast."""
    me = relay.register(name, label="reviewer", capabilities=[CAPABILITY])
    report("registered", epoch=me.epoch)
    mailbox = DemoInbox(me, report, deadline)
    posted = mailbox.next(lambda m: m.sender == author and m.task_id is not None, "review task")
    task_id = posted.task_id
    assert task_id is not None
    report("got_task", message_id=posted.id, task_id=task_id)
    try:
        task = me.claim(task_id)
    except Conflict as exc:
        # A claim that comes after the author closed the task is refused for
        # being finished, not held; the task still names who held it.
        holder = exc.details.get("holder") or relay.task(task_id).assignee
        status = exc.details.get("status", "claimed")
        report("claim_lost", task_id=task_id, holder=holder, status=status, reason=exc.message)
    else:
        expires = task.lease_expires_at.timestamp() if task.lease_expires_at else None
        report("claim_won", task_id=task_id, lease_expires_at=expires)
        for percent, note in PROGRESS:
            me.update_task(task_id, progress=percent, note=note)
            report("progress", task_id=task_id, progress=percent, note=note)
        reply = me.reply(posted, REPLY_BODY)
        report("replied", message_id=reply.id, thread_id=reply.thread_id, to=reply.to)
    thanks = mailbox.next(lambda m: m.sender == author and m.to == "broadcast", "broadcast")
    report("got_broadcast", message_id=thanks.id)
    me.update(status="offline")


#: A worker's answers (see :func:`answer`).
WRITTEN = "PR #42 written: session handling moved to src/auth/sessions.py"
APPROVED = "APPROVED: the session split is clean and the auth tests pass"
MERGED = "merged PR #42; thanks all"


def answer(task: Task) -> str:
    """A worker's result: a review (a task offered to ``cap:review``) approves, a task
    that asks to merge merges, anything else is written."""
    if task.target == f"cap:{CAPABILITY}":
        return APPROVED
    if (task.body or "").lstrip().lower().startswith("merge"):
        return MERGED
    return WRITTEN


def run_worker(relay: Relay, name: str, deadline: float, report: Reporter) -> None:
    """Take the tasks offered to this agent (by name or capability) until the deadline
    (or until released: SIGTERM), each claimed, with progress, and finished with
    :func:`answer` (the agents of examples/review.yaml, run by the workflow runner)."""
    me = relay.agent(name) if os.environ.get("RELAYBUS_AGENT") == name else relay.register(name)
    report("ready", epoch=me.epoch)
    seen: set[int] = set()
    cursor = relay.last_event_id()
    while time.monotonic() < deadline:
        for task in reversed(me.tasks(status="open")):
            if task.id in seen:
                continue
            seen.add(task.id)
            try:
                me.claim(task.id)
            except (Conflict, Forbidden) as exc:
                report("claim_lost", task_id=task.id, reason=exc.message)
                continue
            report("claim_won", task_id=task.id)
            for percent, note in PROGRESS:
                me.update_task(task.id, progress=percent, note=note)
            result = answer(task)
            me.update_task(task.id, status="done", result=result)
            report("done", task_id=task.id, result=result)
        remaining = deadline - time.monotonic()
        for event in relay.wait_events(
            min(remaining, 1.0), since=cursor, kinds=["task.created", "task.released"]
        ):
            cursor = event.id


def main(argv: Sequence[str] | None = None) -> int:
    """Run one demo agent; returns the exit status (0 played its part, 1 failed)."""
    parser = argparse.ArgumentParser(prog="python -m relaybus.workflows.demo_agent")
    parser.add_argument("role", choices=["author", "reviewer", "worker"])
    parser.add_argument(
        "name", nargs="?", default=None, help="the agent id (worker: RELAYBUS_AGENT)"
    )
    parser.add_argument("--reviewers", default="", help="author: comma-separated reviewer ids")
    parser.add_argument("--author", default=AUTHOR, help="reviewer: the author's agent id")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait in all (60; worker: 3600)"
    )
    args = parser.parse_args(argv)
    if args.name is None:
        args.name = os.environ.get("RELAYBUS_AGENT")
        if args.role != "worker" or not args.name:
            parser.error("give the agent id (a worker may take it from RELAYBUS_AGENT)")
    report = Reporter(args.name)
    if args.timeout is None:
        args.timeout = 3600.0 if args.role == "worker" else 60.0
    deadline = time.monotonic() + args.timeout
    # Over a server: spare httpx importing its own command line, half this process's
    # start-up (see relaybus._httpx).
    skip_httpx_cli()
    try:
        with Relay.open() as relay:  # RELAYBUS_DIR or RELAYBUS_URL names the demo's relay
            if args.role == "worker":
                signal.signal(signal.SIGTERM, _released)
                run_worker(relay, args.name, deadline, report)
            elif args.role == "author":
                reviewers = [r for r in args.reviewers.split(",") if r]
                run_author(relay, args.name, reviewers, deadline, report)
            else:
                run_reviewer(relay, args.name, args.author, deadline, report)
    except Released:
        return 0
    except (RelayError, DemoTimeout) as exc:
        report("error", message=str(exc), error=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
