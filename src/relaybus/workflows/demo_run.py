"""Following one run of ``relaybus demo``: the agent processes, the event-log
tail, and the observations the invariants are checked over.

:class:`DemoRun` registers the workflow file's agents on the demo's relay (as the
spawning relay would) and starts their processes
(:mod:`relaybus.workflows.demo_agent`), merges three streams into one conversation
(the relay's event log, tailed in a thread; each agent's JSON reports on its stdout,
read in a thread per process; the workflow runner's events, from its thread: see
:mod:`relaybus.workflows.demo_workflow`), kills whatever outlives the timeout (or
everything, once the workflow run failed), and then reads back what the relay
recorded (:meth:`DemoRun.observations`).

The streams arrive out of step (a report can overtake the event log's tail,
and the other way round), so lines are held and let out in time order: a line
goes once every source that could still say something earlier has moved past
it (each stream is in order by itself), or once it has waited ``hold``
seconds. The watermark idea is stream processing's (Flink, Beam).

With ``relaybus demo --server``, a real ``relaybus serve`` runs first
(:class:`~relaybus.workflows.demo_server.ServerProcess`); the agents then reach the
relay only through it (``RELAYBUS_URL``), and so does this process's tail.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import Relay
from ..errors import NotFound, RelayError
from ..models import Message
from .demo_invariants import Observations
from .demo_render import Step, describe_event, describe_report, describe_workflow
from .demo_server import FOREIGN_ENV, child_env
from .demo_workflow import DemoAgent

#: How often the event-log tail notices that it should stop (seconds).
TAIL_SLICE = 0.1
#: The longest a line waits for an earlier one still on its way (seconds).
HOLD_SECONDS = 0.5
#: The watermark name of the relay's event log (agents' are their names).
EVENT_LOG = "event log"
#: The watermark name of the workflow runner's events.
WORKFLOW = "workflow"


@dataclass
class AgentProcess:
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

    ``agents`` are the processes to start, the author first (each is registered
    first, with its tags and capabilities, unless ``register`` is false: tests
    whose stand-in programs register themselves). ``on_step`` receives each line
    of the conversation as it happens. With ``workflow``, a workflow run's events
    come too (:meth:`workflow_event`, :meth:`workflow_ended`).
    With ``server_url`` the agents talk to that relay server
    (``RELAYBUS_URL``) instead of opening ``relay_dir`` themselves; ``relay``
    should then be a client of the same server. Lines reach ``on_step`` (and
    :attr:`steps`) in time order, each at most ``hold`` seconds late.
    """

    def __init__(
        self,
        relay: Relay,
        relay_dir: Path,
        agents: Sequence[DemoAgent],
        *,
        timeout: float,
        on_step: Callable[[Step], None],
        server_url: str | None = None,
        hold: float = HOLD_SECONDS,
        register: bool = True,
        workflow: bool = False,
    ) -> None:
        self.relay = relay
        self.relay_dir = relay_dir
        self.server_url = server_url
        self.agents = list(agents)
        self.author = self.agents[0].name
        self.reviewers = [a.name for a in self.agents[1:]]
        self.timeout = timeout
        self.on_step = on_step
        self.register = register
        self.steps: list[Step] = []
        self.children: dict[str, AgentProcess] = {}
        self.t0 = time.time()
        self._deadline = time.monotonic() + timeout
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._cursor = 0  # a fresh relay: the whole event log is this run's
        self._tail = threading.Thread(target=self._tail_events, daemon=True)
        self._messages: dict[int, Message | None] = {}
        self.hold = hold
        # Lines not yet let out: (t_ms, arrival order, step, arrived at (monotonic s)).
        self._held: list[tuple[float, int, Step, float]] = []
        self._arrivals = 0
        # Per open source, the time (ms) of the latest thing it said.
        self._marks: dict[str, float] = dict.fromkeys(
            [EVENT_LOG, *(a.name for a in self.agents), *([WORKFLOW] if workflow else [])],
            -math.inf,
        )

    # -- processes -----------------------------------------------------------

    def start(self) -> None:
        """Start the event-log tail, register the agents, and start one process each
        (``RELAYBUS_AGENT`` its name)."""
        self._tail.start()
        if self.server_url is None:
            env = child_env(RELAYBUS_DIR=str(self.relay_dir))
        else:  # only the server opens the database
            env = child_env((*FOREIGN_ENV, "RELAYBUS_DIR"), RELAYBUS_URL=self.server_url)
        if self.register:  # as a spawning relay does before a headless agent starts
            for agent in self.agents:
                self.relay.register(
                    agent.name, label=agent.role, tags=agent.tags,
                    capabilities=agent.capabilities, pid=None,
                )  # fmt: skip
        # A little less than ours: an agent left waiting says what it missed
        # and exits before this process has to kill it.
        left = f"{max(self._deadline - time.monotonic(), 0.0) * 0.9:.3f}"
        for agent in self.agents:
            proc = subprocess.Popen(
                [*agent.command, "--timeout", left],
                cwd=self.relay_dir.parent,
                env={**env, "RELAYBUS_AGENT": agent.name},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            child = AgentProcess(agent.name, agent.role, proc)
            self.children[agent.name] = child
            for target in (self._read_reports, self._read_stderr):
                reader = threading.Thread(target=target, args=(child,), daemon=True)
                reader.start()
                child.readers.append(reader)
        pids = ", ".join(f"{c.name} {c.proc.pid}" for c in self.children.values())
        started = f"started {len(self.children)} agent processes (pids: {pids})"
        self._emit(Step(self._now_ms(), "demo", "started", None, ((started, "dim"),)))

    @property
    def failed(self) -> bool:
        """Some agent process was killed or exited non-zero (or never started)."""
        return not self.children or any(
            c.killed or c.proc.poll() != 0 for c in self.children.values()
        )

    def workflow_event(self, event: dict[str, Any]) -> None:
        """A workflow runner's event (from any thread): rendered in its place."""
        self._items.put(("workflow", event))

    def workflow_ended(self, ok: bool, why: str) -> None:
        """The workflow run ended (from any thread); not ``ok``: the demo cannot pass
        any more, so the agents still running are stopped."""
        self._items.put(("workflow_end", (ok, why)))

    def follow(self, then: Callable[[], None] | None = None) -> None:
        """Render events and reports until every agent closed its stdout (or
        the timeout passed: then kill the survivors), then reap the processes,
        call ``then`` (the demo ends its workflow run there) and render what is left."""
        open_streams = set(self.children)
        while open_streams:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(queue.Empty):
                item = self._items.get(timeout=min(remaining, self._next_due()))
                if item[0] == "eof":
                    open_streams.discard(item[1])
                    self._marks.pop(item[1], None)  # it will say nothing more
                    self._ended(self.children[item[1]])
                else:
                    self._handle(item)
            self._release()
        late = f"still running after {self.timeout:g} s"
        for child in self.children.values():
            try:
                child.proc.wait(timeout=max(self._deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                self._kill(child, late)
        self._reap()
        if then is not None:
            then()
        while not self._items.empty():
            item = self._items.get_nowait()
            if item[0] != "eof":
                self._handle(item)
        self._marks.pop(WORKFLOW, None)
        while found := self.relay.events(since=self._cursor, limit=1000):
            for event in found:
                self._cursor = event.id
                self._handle(("event", event))
        self._release(everything=True)

    def close(self) -> None:
        """Kill every agent process still running (only the ones this run
        started), stop the reader threads and close the pipes. Idempotent."""
        for child in self.children.values():
            if child.proc.poll() is None:
                self._kill(child, "still running when the demo stopped")
        self._reap()
        self._release(everything=True)

    def _ended(self, child: AgentProcess) -> None:
        """An agent closed its stdout: it is exiting. If it failed, the demo
        cannot pass any more, so stop the others now rather than at the timeout."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=max(self._deadline - time.monotonic(), 0.0))
        code = child.proc.returncode
        if code in (0, None) or child.killed:
            return
        self._stop_all(f"✗ {child.name} exited {code}: stopping the other agents", child.name)

    def _stop_all(self, text: str, culprit: str) -> None:
        """Something failed (``culprit``): say ``text``, kill the agents still running."""
        agent = culprit if culprit in self.children else None
        self._emit(Step(self._now_ms(), "demo", "failed", agent, ((text, "bold red"),)))
        for other in self.children.values():
            if other.proc.poll() is None:
                self._kill(other, f"stopped after {culprit} failed")

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

    def _kill(self, child: AgentProcess, why: str) -> None:
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

    def _read_reports(self, child: AgentProcess) -> None:
        assert child.proc.stdout is not None
        for line in child.proc.stdout:
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                child.stderr.append(line.rstrip("\n"))  # stray output, not a report
                continue
            self._items.put(("report", report))
        self._items.put(("eof", child.name))

    def _read_stderr(self, child: AgentProcess) -> None:
        assert child.proc.stderr is not None
        for line in child.proc.stderr:
            child.stderr.append(line.rstrip("\n"))

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        step: Step | None = None
        if kind == "event":
            self._cursor = max(self._cursor, payload.id)
            self._advance(EVENT_LOG, (payload.created_at.timestamp() - self.t0) * 1000)
            step = describe_event(payload, self.t0, self._message)
        elif kind == "report":
            agent = str(payload.get("agent"))
            child = self.children.get(agent)
            if child is not None:
                child.reports.append(payload)
            with contextlib.suppress(TypeError, ValueError):
                self._advance(agent, (float(payload["t"]) - self.t0) * 1000)
            step = describe_report(payload, self.t0)
        elif kind == "workflow":
            with contextlib.suppress(TypeError, ValueError, KeyError):
                self._advance(WORKFLOW, (float(payload["t"]) - self.t0) * 1000)
            step = describe_workflow(payload, self.t0)
        elif kind == "workflow_end":
            self._marks.pop(WORKFLOW, None)  # it will say nothing more
            ok, why = payload
            if not ok:
                self._stop_all(f"✗ the workflow run {why}: stopping the agents", "the workflow")
        elif kind == "tail_error":
            step = Step(
                self._now_ms(), "demo", "error", None, ((f"✗ event log: {payload}", "red"),)
            )
        if step is not None:
            self._emit(step)

    def _now_ms(self) -> float:
        return (time.time() - self.t0) * 1000

    def _emit(self, step: Step) -> None:
        """Hold ``step`` until it can go out in time order (see :meth:`_release`)."""
        self._arrivals += 1
        heapq.heappush(self._held, (step.t_ms, self._arrivals, step, time.monotonic()))
        self._release()

    def _advance(self, source: str, t_ms: float) -> None:
        """``source`` said something at ``t_ms``: it will say nothing earlier."""
        if source in self._marks:
            self._marks[source] = max(self._marks[source], t_ms)

    def _release(self, *, everything: bool = False) -> None:
        """Let out, earliest first, the held lines that no open source can still
        precede, and the ones held for :attr:`hold` seconds (all with ``everything``)."""
        low = min(self._marks.values(), default=math.inf)
        now = time.monotonic()
        while self._held:
            t_ms, _, step, arrived = self._held[0]
            if not (everything or t_ms <= low or now - arrived >= self.hold):
                break
            heapq.heappop(self._held)
            self.steps.append(step)
            self.on_step(step)

    def _next_due(self) -> float:
        """Seconds until the earliest held line has waited :attr:`hold` (``inf``: none)."""
        if not self._held:
            return math.inf
        return max(self._held[0][3] + self.hold - time.monotonic(), 0.0)

    def _message(self, message_id: int) -> Message | None:
        if message_id not in self._messages:
            try:
                self._messages[message_id] = self.relay.message(message_id)
            except NotFound:
                self._messages[message_id] = None
        return self._messages[message_id]

    # -- results -------------------------------------------------------------

    def observations(self, task_id: int | None) -> Observations:
        """What the agents reported plus what the relay recorded, for the checker;
        ``task_id`` is the review task (the workflow's review step's: ``None`` if it
        was never offered)."""
        message_id = None
        status, history, thread = None, [], []
        if task_id is not None:
            task = self.relay.task(task_id)
            message_id = task.message_id
            status = task.status.value
        if task_id is not None and message_id is not None:
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
            author=self.author,
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
