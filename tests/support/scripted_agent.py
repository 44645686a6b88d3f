"""A scripted agent for the workflow tests: takes tasks offered to it and answers by a
script given in flags, through the SDK (no model, no terminal).

    python -m tests.support.scripted_agent NAME [--cap review] [--tag t]
        [--fail N] [--hang] [--approve-on K] [--echo] [--sleep S]
        [--result TEXT | --results A,B,C] [--max-tasks M] [--timeout S]

It registers NAME (unless ``RELAYBUS_AGENT`` is NAME already: a spawned agent, whose
supervisor or ``relaybus run`` registered it), then waits for tasks offered to it
(the open tasks it may see, woken by the event log), claims each (losing a race is
fine) and:

- ``--fail N``: marks its first N tasks failed, then succeeds;
- ``--hang``: claims its first task and then does nothing (until killed);
- ``--approve-on K``: answers ``APPROVED`` on its K-th task, ``CHANGES REQUESTED``
  before (a reviewer in a review loop);
- ``--echo``: answers with the task's text; ``--results A,B``: answers A to its first
  task, B to its second (the last repeats); else ``--result`` (default: done by NAME);
- ``--sleep S``: waits S seconds before answering;
- ``--named-only``: takes only tasks offered to NAME itself (not to its capability).

Each thing it does is a JSON line on stdout (``{"agent", "event", "task", ...}``),
and every message it receives too (a nudge), so a test can read what happened.
Exits 0 after ``--max-tasks`` tasks or ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relaybus.client import AgentHandle, Relay
from relaybus.errors import Conflict, Forbidden, RelayError
from relaybus.models import Task

#: The longest single wait for something to happen (seconds).
SLICE = 0.5
#: The events that may bring this agent something to do.
WAKE = ("message.sent", "task.created", "task.released")
#: The repository root: where ``python -m tests.support.scripted_agent`` runs from.
ROOT = Path(__file__).resolve().parents[2]
#: How a test starts a scripted agent; its name and flags follow.
PROGRAM = (sys.executable, "-m", "tests.support.scripted_agent")


class Agents:
    """Scripted agent processes a test starts (each logging its JSON lines to a file
    under ``folder``) and stops, by pid, at the end (:meth:`stop`)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *flags: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.jsonl"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*PROGRAM, name, *flags],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def lines(self, name: str) -> list[dict[str, Any]]:
        """What agent ``name`` reported so far (its JSON lines)."""
        log = self.folder / f"{name}.jsonl"
        if not log.exists():
            return []
        found = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                found.append({"agent": name, "event": "output", "text": line})
        return found

    def events(self, name: str, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines(name) if line.get("event") == event]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()  # by the pid Popen gave: only a process this test started
            proc.wait()


def report(name: str, event: str, **data: Any) -> None:
    line = {"agent": name, "event": event, "t": time.time(), **data}
    print(json.dumps(line, ensure_ascii=False), flush=True)


class Script:
    """What to answer to the agent's k-th task (1-based)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.handled = 0

    def answer(self, task: Task) -> tuple[str, str]:
        """(status, result-or-note) for the next task."""
        self.handled += 1
        k = self.handled
        args = self.args
        if k <= args.fail:
            return "failed", f"scripted failure {k} of {args.fail}"
        if args.approve_on is not None:
            if k >= args.approve_on:
                return "done", f"APPROVED (round {k})"
            return "done", f"CHANGES REQUESTED (round {k}): add tests"
        if args.echo:
            return "done", task.body or ""
        if args.results:
            results = args.results.split(",")
            return "done", results[min(k, len(results)) - 1]
        return "done", args.result or f"done by {args.name}"


def handle(me: AgentHandle, task: Task, script: Script, name: str, hang: bool) -> bool:
    """Claim and answer one task; ``False`` when it was not ours to take."""
    try:
        me.claim(task.id)
    except (Conflict, Forbidden):
        return False
    report(name, "claimed", task=task.id, title=task.title, attempt=task.meta.get("attempt"))
    if hang:
        report(name, "hanging", task=task.id)
        return True
    if script.args.sleep:
        time.sleep(script.args.sleep)
    status, text = script.answer(task)
    try:
        if status == "done":
            me.update_task(task.id, status="done", result=text)
        else:
            me.update_task(task.id, status="failed", note=text)
    except Conflict as exc:  # cancelled meanwhile (a timeout): nothing to answer
        report(name, "lost", task=task.id, reason=exc.message)
        return True
    report(name, status, task=task.id, result=text)
    return True


def serve(relay: Relay, me: AgentHandle, args: argparse.Namespace) -> None:
    """Take tasks until done; look at the inbox and the open tasks only when the event
    log says something new may be there (a message, a task offered or given back)."""
    deadline = time.monotonic() + args.timeout
    script = Script(args)
    seen: set[int] = set()
    cursor = relay.last_event_id()
    hung = False
    taken = 0
    mail = offers = True  # look once at the start
    while time.monotonic() < deadline and taken < args.max_tasks:
        if mail:
            for message in me.inbox(unread_only=True, mark_read=True):
                if message.task_id is None:
                    report(args.name, "message", sender=message.sender, body=message.body)
        if offers and not hung:
            for task in reversed(me.tasks(status="open")):
                if task.id in seen or task.creator == args.name:
                    continue
                if args.named_only and task.target != args.name:
                    continue
                seen.add(task.id)
                if handle(me, task, script, args.name, hang=args.hang):
                    taken += 1
                    hung = args.hang
                    if hung:
                        break
        mail = offers = False
        while not (mail or offers) and time.monotonic() < deadline:
            remaining = deadline - time.monotonic()
            for event in relay.wait_events(
                min(SLICE, max(remaining, 0.0)), since=cursor, limit=1000, kinds=WAKE
            ):
                cursor = event.id
                mail = mail or event.kind == "message.sent"
                offers = offers or event.kind in ("task.created", "task.released")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.scripted_agent")
    parser.add_argument("name")
    parser.add_argument("--cap", action="append", default=[], help="a capability (repeat)")
    parser.add_argument("--tag", action="append", default=[], help="a tag (repeat)")
    parser.add_argument("--fail", type=int, default=0, help="fail the first N tasks")
    parser.add_argument("--hang", action="store_true", help="claim, then do nothing")
    parser.add_argument("--approve-on", type=int, default=None, help="APPROVED on task K")
    parser.add_argument(
        "--named-only", action="store_true", help="take only tasks offered to NAME itself"
    )
    parser.add_argument("--echo", action="store_true", help="answer with the task's text")
    parser.add_argument("--result", default=None, help="the answer")
    parser.add_argument("--results", default=None, help="answers in turn, comma-separated")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--max-tasks", type=int, default=1_000_000, help="stop after M tasks")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop after S seconds")
    args = parser.parse_args(argv)
    try:
        with Relay.open() as relay:  # RELAYBUS_DIR or RELAYBUS_URL names the relay
            if os.environ.get("RELAYBUS_AGENT") == args.name:
                me = relay.agent(args.name)
            else:
                me = relay.register(args.name, capabilities=args.cap, tags=args.tag)
            report(args.name, "ready", pid=os.getpid())
            serve(relay, me, args)
    except RelayError as exc:
        report(args.name, "error", reason=exc.message)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
