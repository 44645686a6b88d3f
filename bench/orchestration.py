"""Orchestration (issue 19): how long a spawned agent takes to register, and what the
workflow runner adds to each step on top of its agents' work.

Usage::

    .venv/bin/python bench/orchestration.py [--spawns 20] [--steps 50] [--agents 4]
        [--runs 3] [--only spawn|runner]

Prints the load average, then, each on a relay in its own temporary folder:

- spawn to registered, p50 and p99 (ms), for the scripted test agent
  (tests/support/scripted_agent.py), spawned ``--spawns`` times through the warm
  local relay's supervisor, in a PTY under ``relaybus run`` and headless: from calling
  ``relay.spawn`` to the ``agent.registered`` event, then released;
- the workflow runner's overhead, in a ``--steps``-step fan-out/fan-in workflow (one
  step, then ``steps - 2`` steps that depend on it, then one that depends on all of
  them) and in a chain of as many steps, each run ``--runs`` times by ``--agents``
  scripted agents (other processes) that answer at once, on an embedded SQLite relay
  (the runner in this process). Per step (ms, p50 and p99 of each run, the median
  over runs):

  * **the runner's own time per step** (the issue's figure, target at most 20 ms
    p50 in the fan-out/fan-in): the wall time the runner spends working, not
    waiting for events: making the step's task, handling its task's events,
    recording it done (its verification included), plus an equal share of what it
    does for all steps at once (writing the run's state to the run store, the
    loop's passes); with the mean, and the runner's CPU time per step;
  * **offer latency**: from its dependencies' last task done (the event log's time)
    to its own task made (the ``task.created`` event): in a fan-out, the 48 tasks
    are made one after another, so this includes the others' making;
  * **record latency**: from its task done to the runner recording the step done.

  The agents' work (noticing the offer, claiming, answering) is outside the runner's
  own time; the latencies include waiting for SQLite's write lock, which the agents
  hold in turn.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaybus import Relay
from relaybus.client import warm
from relaybus.workflows.runner import WorkflowRunner
from relaybus.workflows.runner_state import RunState
from relaybus.workflows.spec import StepSpec, Workflow

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "tests" / "support" / "scripted_agent.py"
#: Seconds anything may take before the benchmark gives up.
WAIT = 120.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(label: str, samples: list[float]) -> None:
    print(
        f"  {label:<28} p50 {percentile(samples, 0.5):7.1f} ms   "
        f"p99 {percentile(samples, 0.99):7.1f} ms   (n={len(samples)})"
    )


@contextmanager
def warm_relay(folder: Path) -> Iterator[None]:
    """Let this process use the warm relay of ``folder``; stop it (by its pid) after."""
    before = os.environ.pop("RELAYBUS_DAEMON", None)
    try:
        yield
    finally:
        info = warm.probe(folder)
        if info is not None and info.pid is not None:
            os.kill(info.pid, signal.SIGTERM)
        if before is not None:
            os.environ["RELAYBUS_DAEMON"] = before


def spawn_to_registered(spawns: int, headless: bool) -> list[float]:
    """Milliseconds from ``relay.spawn`` to the agent's ``agent.registered`` event (the
    first spawn, which starts the warm relay, not counted)."""
    samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="relaybus-bench-") as tmp:
        folder = Path(tmp) / ".relay"
        folder.mkdir(mode=0o700)
        with warm_relay(folder), Relay.open(dir=folder) as relay:
            for i in range(spawns + 1):
                name = f"agent-{i}"
                cursor = relay.last_event_id()
                start = time.perf_counter()
                relay.spawn(
                    name,
                    command=[sys.executable, str(AGENT), name, "--timeout", "60"],
                    headless=headless,
                    cwd=tmp,
                )
                registered = False
                deadline = time.monotonic() + WAIT
                while not registered and time.monotonic() < deadline:
                    for event in relay.wait_events(
                        deadline - time.monotonic(), since=cursor, kinds=["agent.registered"]
                    ):
                        cursor = event.id
                        registered = registered or event.agent_id == name
                if i:
                    samples.append((time.perf_counter() - start) * 1000)
                relay.release(name, reason="measured", timeout=5.0)
    return samples


class Times:
    """When the runner recorded each step done (its progress events)."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        if event["event"] == "step.done":
            with self.lock:
                self.done[event["step"]] = time.time()

    def close(self) -> None:
        return None


class Busy:
    """The runner's own working time, measured around its work (not its waits): its
    loop's passes (offering, deadlines), its handling of events and its writes of the
    state. Each step is charged what the runner did for it alone (making its task,
    handling its task's events, recording it), plus an equal share of the rest (the
    state writes, the loop's passes); :attr:`cpu` is the process's CPU time meanwhile
    (the runner's threads: the agents are other processes)."""

    def __init__(self, runner: WorkflowRunner) -> None:
        self.runner = runner
        self.seconds = 0.0
        self.cpu = 0.0
        self.direct: dict[str, float] = {}
        self._charging: str | None = None
        self._timing = False
        for name in ("_advance", "_handle", "_flush"):
            setattr(runner, name, self.timed(getattr(runner, name)))
        runner._offer = self.charged(runner._offer, lambda name, *_: name)  # type: ignore[method-assign]
        runner._on_task_event = self.charged(  # type: ignore[method-assign]
            runner._on_task_event, self.step_of
        )

    def step_of(self, event: Any) -> str | None:
        where = self.runner.tasks.get(event.data.get("task_id", -1))
        return where[0] if where is not None else None

    def timed(self, method: Any) -> Any:
        def call(*args: Any) -> Any:
            if self._timing:  # inside another timed call (events handled mid-pass)
                return method(*args)
            self._timing = True
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return method(*args)
            finally:
                self._timing = False
                self.seconds += time.perf_counter() - start
                self.cpu += time.process_time() - cpu

        return call

    def charged(self, method: Any, step: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            name = step(*args)
            if self._charging is not None or name is None:  # inside another's work
                return method(*args, **kwargs)
            self._charging = name
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._charging = None
                self.direct[name] = self.direct.get(name, 0.0) + time.perf_counter() - start

        return call

    def per_step(self, steps: list[str]) -> list[float]:
        """Each step's own time plus its share of the rest (ms)."""
        shared = (self.seconds - sum(self.direct.values())) / len(steps)
        return [(self.direct.get(name, 0.0) + shared) * 1000 for name in steps]


def chain_workflow(steps: int, folder: Path) -> Workflow:
    specs = [
        StepSpec(name=f"s{i:02d}", task="go", capability="work", timeout=WAIT,
                 depends_on=(f"s{i - 1:02d}",) if i else ())
        for i in range(steps)
    ]  # fmt: skip
    return Workflow(
        name="chain", steps={s.name: s for s in specs}, path=folder / "chain.yaml", source="x"
    )


def fan_workflow(steps: int, folder: Path) -> Workflow:
    middle = [f"part-{i:02d}" for i in range(steps - 2)]
    specs = [StepSpec(name="start", task="start", capability="work", timeout=WAIT)]
    specs += [
        StepSpec(name=m, task=m, capability="work", depends_on=("start",), timeout=WAIT)
        for m in middle
    ]
    specs.append(
        StepSpec(name="join", task="join", capability="work", depends_on=tuple(middle),
                 timeout=WAIT)
    )  # fmt: skip
    return Workflow(
        name="bench", steps={s.name: s for s in specs}, path=folder / "bench.yaml", source="x"
    )


@dataclass
class Measured:
    """One measured run, per step (ms): the runner's ``own`` time (:class:`Busy`),
    ``offer`` (its dependencies' last task done -> its own task made) and ``record``
    (its task done -> the runner records the step done); and for the run: ``wall``,
    the runner's working time ``busy`` and its ``cpu`` time (s)."""

    own: list[float]
    offer: list[float]
    record: list[float]
    wall: float
    busy: float
    cpu: float


def runner_overhead(steps: int, agents: int, shape: str) -> Measured:
    """Run a ``shape`` (``fan`` or ``chain``) workflow of ``steps`` steps."""
    with tempfile.TemporaryDirectory(prefix="relaybus-bench-") as tmp:
        folder = Path(tmp) / ".relay"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
        env.update(RELAYBUS_DIR=str(folder), RELAYBUS_DAEMON="0")
        os.environ["RELAYBUS_DAEMON"] = "0"
        with Relay.open(dir=folder) as relay:
            procs = [
                subprocess.Popen(
                    [sys.executable, str(AGENT), f"w{i}", "--cap", "work", "--timeout", "300"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(agents)
            ]
            try:
                cursor = 0
                ready: set[str] = set()
                while len(ready) < agents:
                    for event in relay.wait_events(WAIT, since=cursor, kinds=["agent."]):
                        cursor = event.id
                        ready.add(event.agent_id or "")
                make = fan_workflow if shape == "fan" else chain_workflow
                workflow = make(steps, Path(tmp))
                times = Times()
                runner = WorkflowRunner(
                    relay,
                    workflow,
                    open_tail=lambda: Relay.open(dir=folder),
                    progress=times,
                    spawn=False,
                )
                busy = Busy(runner)
                start = time.time()
                runner.start()
                runner.execute()
                wall = time.time() - start
                offered: dict[str, float] = {}
                finished: dict[str, float] = {}
                by_task = {t: s for t, (s, _) in runner.tasks.items()}
                after = 0
                while found := relay.events(since=after, limit=1000):
                    for event in found:
                        after = event.id
                        step = by_task.get(event.data.get("task_id", -1))
                        if step is None:
                            continue
                        if event.kind == "task.created":
                            offered[step] = event.created_at.timestamp()
                        elif event.kind == "task.updated" and event.data.get("status") == "done":
                            finished[step] = event.created_at.timestamp()
            finally:
                for proc in procs:
                    proc.kill()  # by pid: the agents this benchmark started
                    proc.wait()
        offer: list[float] = []
        record: list[float] = []
        run_start = runner.run.created_at.timestamp() if runner.run else start
        for name, spec in workflow.steps.items():
            ready_at = max((finished[d] for d in spec.depends_on), default=run_start)
            offer.append((offered[name] - ready_at) * 1000)
            record.append((times.done[name] - finished[name]) * 1000)
        own = busy.per_step(list(workflow.steps))
        return Measured(own, offer, record, wall, busy.seconds, busy.cpu)


def summary(label: str, runs: list[list[float]], note: str = "") -> None:
    """p50 and p99 of each run's samples; with several runs, the median of each."""
    p50 = statistics.median([percentile(r, 0.5) for r in runs])
    p99 = statistics.median([percentile(r, 0.99) for r in runs])
    print(f"  {label:<44} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms{note}")


def runner_figures(steps: int, agents: int, runs: int, shape: str, what: str) -> None:
    got = [runner_overhead(steps, agents, shape) for _ in range(runs)]
    wall = statistics.median([g.wall for g in got])
    print(
        f"runner, {steps}-step {what} ({agents} scripted agents answering at once, "
        f"embedded SQLite; median of {runs} run(s), run {wall:.2f} s):"
    )
    target = "   <- target: at most 20 ms p50" if shape == "fan" else ""
    summary("runner's own time per step", [g.own for g in got], target)
    busy = statistics.median([g.busy / steps * 1000 for g in got])
    cpu = statistics.median([g.cpu / steps * 1000 for g in got])
    print(f"  {'  (mean: wall in its work / CPU)':<44} {busy:7.1f} ms / {cpu:.1f} ms")
    summary("offer latency (deps done -> task made)", [g.offer for g in got])
    summary("record latency (task done -> step done)", [g.record for g in got])
    both = [[a + b for a, b in zip(g.offer, g.record, strict=True)] for g in got]
    summary("offer + record", both)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="runs of each workflow (medians)")
    parser.add_argument("--only", choices=("spawn", "runner"), help="one half only")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.only != "runner":
        print(f"spawn to registered ({args.spawns} spawns of a scripted agent):")
        figures("in a PTY (relaybus run)", spawn_to_registered(args.spawns, headless=False))
        figures("headless", spawn_to_registered(args.spawns, headless=True))
    if args.only != "spawn":
        for shape, what in (("fan", "fan-out/fan-in"), ("chain", "chain")):
            runner_figures(args.steps, args.agents, args.runs, shape, what)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
