"""Following one run of ``relaybus demo``: the agent processes, the event-log
tail, and the observations the invariants are checked over.

:class:`DemoRun` starts the processes of :mod:`relaybus.workflows.demo_agent`
on the demo's relay, merges two streams into one conversation (the relay's
event log, tailed in a thread, and each agent's JSON reports on its stdout,
read in a thread per process), kills whatever outlives the timeout, and then
reads back what the relay recorded (:meth:`DemoRun.observations`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import Relay
from ..errors import NotFound, RelayError
from ..models import Message
from .demo_agent import AUTHOR
from .demo_invariants import Observations
from .demo_render import Step, describe_event, describe_report

#: How often the event-log tail notices that it should stop (seconds).
TAIL_SLICE = 0.1
#: How an agent process starts; its role, name and options follow.
AGENT_PROGRAM = (sys.executable, "-m", "relaybus.workflows.demo_agent")
#: Variables that would point the agents at another relay than the demo's.
FOREIGN_ENV = ("RELAYBUS_DATABASE", "RELAYBUS_URL", "RELAYBUS_AGENT", "RELAYBUS_WORKSPACE")


@dataclass
class Child:
    """One agent process and what it printed."""

    name: str
    role: str
    proc: subprocess.Popen[str]
    reports: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)
    killed: bool = False


class DemoRun:
    """Starts the agent processes and follows them until they end or time runs out.

    ``on_step`` receives each line of the conversation as it happens;
    ``program`` is the command line that starts an agent (tests swap it).
    """

    def __init__(
        self,
        relay: Relay,
        relay_dir: Path,
        reviewers: Sequence[str],
        *,
        timeout: float,
        on_step: Callable[[Step], None],
        program: Sequence[str] = AGENT_PROGRAM,
    ) -> None:
        self.relay = relay
        self.relay_dir = relay_dir
        self.reviewers = list(reviewers)
        self.timeout = timeout
        self.on_step = on_step
        self.program = list(program)
        self.steps: list[Step] = []
        self.children: dict[str, Child] = {}
        self.t0 = time.time()
        self._deadline = time.monotonic() + timeout
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._cursor = 0  # a fresh relay: the whole event log is this run's
        self._tail = threading.Thread(target=self._tail_events, daemon=True)
        self._messages: dict[int, Message | None] = {}

    # -- processes -----------------------------------------------------------

    def start(self) -> None:
        """Start the event-log tail and one process per agent."""
        self._tail.start()
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env["RELAYBUS_DIR"] = str(self.relay_dir)
        # The agents import relaybus from wherever this process did (a source
        # checkout need not be installed); an installed one is found anyway.
        package_root = str(Path(__file__).resolve().parents[2])
        if package_root not in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
            paths = (package_root, env.get("PYTHONPATH"))
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["PYTHONIOENCODING"] = "utf-8"
        # A little less than ours: an agent left waiting says what it missed
        # and exits before this process has to kill it.
        left = f"{max(self._deadline - time.monotonic(), 0.0) * 0.9:.3f}"
        commands = {AUTHOR: ["author", AUTHOR, "--reviewers", ",".join(self.reviewers)]}
        for name in self.reviewers:
            commands[name] = ["reviewer", name, "--author", AUTHOR]
        for name, args in commands.items():
            proc = subprocess.Popen(
                [*self.program, *args, "--timeout", left],
                cwd=self.relay_dir.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            child = Child(name, args[0], proc)
            self.children[name] = child
            for target in (self._read_reports, self._read_stderr):
                reader = threading.Thread(target=target, args=(child,), daemon=True)
                reader.start()
                child.readers.append(reader)
        pids = ", ".join(f"{c.name} {c.proc.pid}" for c in self.children.values())
        started = f"started {len(self.children)} agent processes (pids: {pids})"
        self._emit(Step(self._now_ms(), "demo", "started", None, ((started, "dim"),)))

    def follow(self) -> None:
        """Render events and reports until every agent closed its stdout (or
        the timeout passed: then kill the survivors), then reap the processes."""
        open_streams = set(self.children)
        while open_streams:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(queue.Empty):
                item = self._items.get(timeout=remaining)
                if item[0] == "eof":
                    open_streams.discard(item[1])
                    self._ended(self.children[item[1]])
                else:
                    self._handle(item)
        late = f"still running after {self.timeout:g} s"
        for child in self.children.values():
            try:
                child.proc.wait(timeout=max(self._deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                self._kill(child, late)
        self._reap()
        while not self._items.empty():
            item = self._items.get_nowait()
            if item[0] != "eof":
                self._handle(item)
        while found := self.relay.events(since=self._cursor, limit=1000):
            for event in found:
                self._cursor = event.id
                self._handle(("event", event))

    def close(self) -> None:
        """Kill every agent process still running (only the ones this run
        started), stop the reader threads and close the pipes. Idempotent."""
        for child in self.children.values():
            if child.proc.poll() is None:
                self._kill(child, "still running when the demo stopped")
        self._reap()

    def _ended(self, child: Child) -> None:
        """An agent closed its stdout: it is exiting. If it failed, the demo
        cannot pass any more, so stop the others now rather than at the timeout."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=max(self._deadline - time.monotonic(), 0.0))
        code = child.proc.returncode
        if code in (0, None) or child.killed:
            return
        text = f"✗ {child.name} exited {code}: stopping the other agents"
        self._emit(Step(self._now_ms(), "demo", "failed", child.name, ((text, "bold red"),)))
        for other in self.children.values():
            if other.proc.poll() is None:
                self._kill(other, f"stopped after {child.name} failed")

    def _reap(self) -> None:
        for child in self.children.values():
            for reader in child.readers:
                reader.join(timeout=5.0)  # the pipes closed with the process
            for pipe in (child.proc.stdout, child.proc.stderr):
                if pipe is not None:
                    pipe.close()
        self._stop.set()
        if self._tail.is_alive():
            self._tail.join()

    def _kill(self, child: Child, why: str) -> None:
        child.proc.kill()  # by the pid Popen gave us: only a process we started
        child.proc.wait()
        child.killed = True
        text = f"✗ {child.name} (pid {child.proc.pid}) {why}: killed"
        self._emit(Step(self._now_ms(), "demo", "killed", child.name, ((text, "bold red"),)))

    # -- input ---------------------------------------------------------------

    def _tail_events(self) -> None:
        cursor = self._cursor
        while not self._stop.is_set():
            try:
                found = self.relay.wait_events(TAIL_SLICE, since=cursor, limit=1000)
            except RelayError as exc:
                self._items.put(("tail_error", str(exc)))
                return
            for event in found:
                cursor = event.id
                self._items.put(("event", event))

    def _read_reports(self, child: Child) -> None:
        assert child.proc.stdout is not None
        for line in child.proc.stdout:
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                child.stderr.append(line.rstrip("\n"))  # stray output, not a report
                continue
            self._items.put(("report", report))
        self._items.put(("eof", child.name))

    def _read_stderr(self, child: Child) -> None:
        assert child.proc.stderr is not None
        for line in child.proc.stderr:
            child.stderr.append(line.rstrip("\n"))

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        step: Step | None = None
        if kind == "event":
            self._cursor = max(self._cursor, payload.id)
            step = describe_event(payload, self.t0, self._message)
        elif kind == "report":
            child = self.children.get(str(payload.get("agent")))
            if child is not None:
                child.reports.append(payload)
            step = describe_report(payload, self.t0)
        elif kind == "tail_error":
            step = Step(
                self._now_ms(), "demo", "error", None, ((f"✗ event log: {payload}", "red"),)
            )
        if step is not None:
            self._emit(step)

    def _now_ms(self) -> float:
        return (time.time() - self.t0) * 1000

    def _emit(self, step: Step) -> None:
        self.steps.append(step)
        self.on_step(step)

    def _message(self, message_id: int) -> Message | None:
        if message_id not in self._messages:
            try:
                self._messages[message_id] = self.relay.message(message_id)
            except NotFound:
                self._messages[message_id] = None
        return self._messages[message_id]

    # -- results -------------------------------------------------------------

    def observations(self) -> Observations:
        """What the agents reported plus what the relay recorded, for the checker."""
        author = self.children[AUTHOR]
        posted = [r for r in author.reports if r.get("event") == "posted"]
        task_id = posted[-1].get("task_id") if posted else None
        message_id = posted[-1].get("message_id") if posted else None
        status, history, thread = None, [], []
        if task_id is not None and message_id is not None:
            status = self.relay.task(task_id).status.value
            history = [[e.kind, e.agent_id] for e in self.relay.task_history(task_id)]
            thread = [
                {"id": m.id, "sender": m.sender, "reply_to": m.reply_to, "thread_id": m.thread_id}
                for m in self.relay.thread(message_id)
            ]
        inboxes: dict[str, list[int]] = {}
        for name in self.children:
            try:
                handle = self.relay.agent(name)
            except NotFound:  # it never got as far as registering
                inboxes[name] = []
                continue
            found = handle.inbox(unread_only=False, newest_first=False, limit=1000)
            inboxes[name] = [m.id for m in found]
        return Observations(
            author=AUTHOR,
            reviewers=list(self.reviewers),
            reports={name: list(c.reports) for name, c in self.children.items()},
            exit_codes={
                name: None if c.killed else c.proc.returncode for name, c in self.children.items()
            },
            task_id=task_id,
            task_message_id=message_id,
            task_status=status,
            task_history=history,
            thread=thread,
            inboxes=inboxes,
        )
