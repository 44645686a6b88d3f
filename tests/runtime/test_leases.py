"""Leases that live with the work: ``relaybus run`` and ``relaybus tmux attach`` renew the
leases their agent holds while they live and stop when they die (SIGKILL), and
``--claim-first`` types a claimable message into the winner's program only.

The lease tests hold a 2 s lease for 30 s of wall time each: marked slow, so that they
start first and overlap the rest of the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.models import DeliveryState, TaskStatus
from relaybus.runtime.tmux import Pane
from tests.runtime.tmuxutil import TMUX, Box, Watch, inputs
from tests.runtime.tmuxutil import box_fixture as box_fixture
from tests.runtime.tmuxutil import watch_fixture as watch_fixture
from tests.support.env import clean_environ

#: The lease the tests claim with, and how long they hold it, seconds.
LEASE = 2.0
HOLD = 30.0
#: Seconds before a step is called hung.
HUNG = 30.0
#: A program that writes its pid to ``prog.pid`` and then sleeps.
SLEEPER = "import os, time; open('prog.pid', 'w').write(str(os.getpid())); time.sleep(3600)"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """The relay of the runtimes' environment: bob (who hands out work) and carol (who
    takes over what lapses) registered."""
    with Relay.open(dir=tmp_path / ".relay") as opened:
        opened.register("bob")
        opened.register("carol", capabilities=["long"])
        yield opened


def registered(relay: Relay, agent_id: str) -> int:
    """Wait until ``agent_id`` is registered and online; its epoch."""
    deadline = time.monotonic() + HUNG
    since = 0
    while True:
        found = [a for a in relay.agents() if a.id == agent_id and a.status != "offline"]
        if found:
            return found[0].epoch
        left = deadline - time.monotonic()
        assert left > 0, f"{agent_id} never registered"
        events = relay.wait_events(min(left, 1.0), since=since, kinds=["agent."])
        since = max([since, *(e.id for e in events)])


def claim_short(relay: Relay, agent_id: str) -> int:
    """bob offers ``cap:long`` (``agent_id`` and carol) a task, which ``agent_id`` claims
    (as its current instance, from outside the runtime, like its program's ``relaybus
    claim``) for :data:`LEASE` s."""
    task_id = relay.agent("bob").send("cap:long", "long job", claimable=True).task_id
    assert task_id is not None
    relay.agent(agent_id).claim(task_id, lease=LEASE)
    return task_id


def held_throughout(relay: Relay, task_id: int, agent_id: str, seconds: float) -> None:
    """``agent_id`` holds the task for ``seconds``: no release in the event log, and each
    look at the task (which sweeps lapsed leases first) finds it held."""
    since = relay.last_event_id()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        released = relay.wait_events(min(left, 1.0), since=since, kinds=["task.released"])
        assert [e.data for e in released if e.data.get("task_id") == task_id] == []
        since = max([since, *(e.id for e in released)])
        task = relay.task(task_id)
        assert (task.status, task.assignee) == (TaskStatus.CLAIMED, agent_id)
    renewals = [e.kind for e in relay.task_history(task_id)]
    assert "released" not in renewals


def lapses_within_one_lease(relay: Relay, task_id: int, killed_at: float) -> None:
    """After the kill (wall clock ``killed_at``) the lease is renewed no more: it ends
    within one lease of the kill, and then carol can claim the task."""
    task = relay.task(task_id)
    if task.status is TaskStatus.CLAIMED:
        assert task.lease_expires_at is not None
        expires = task.lease_expires_at.timestamp()
        assert expires <= killed_at + LEASE + 0.01, (expires, killed_at)
        time.sleep(max(expires - time.time(), 0.0) + 0.05)  # to the end of the lease
    assert relay.agent("carol").claim(task_id).assignee == "carol"


def kill(*pids: int) -> float:
    """SIGKILL each process (gone already is fine); the wall clock after."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return time.time()


def program_pid(folder: Path) -> int:
    path = folder / "prog.pid"
    deadline = time.monotonic() + HUNG
    while not path.exists() or not path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.05)
    return int(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_run_agent_keeps_a_short_lease_while_it_lives_and_loses_it_when_killed(
    tmp_path: Path, relay: Relay
) -> None:
    env = clean_environ()
    env.update(RELAYBUS_DIR=str(tmp_path / ".relay"), HOME=str(tmp_path / "home"))
    argv = [sys.executable, "-m", "relaybus", "run", "--headless", "--name", "worker"]
    argv += ["--cap", "long", "--"]
    runner = subprocess.Popen(
        [*argv, sys.executable, "-c", SLEEPER],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        registered(relay, "worker")
        program = program_pid(tmp_path)
        task_id = claim_short(relay, "worker")
        held_throughout(relay, task_id, "worker", HOLD)
        killed_at = kill(program, runner.pid)
        runner.wait(HUNG)
        lapses_within_one_lease(relay, task_id, killed_at)
    finally:
        if runner.poll() is None:
            runner.kill()
        _, err = runner.communicate(timeout=HUNG)
        print(err.decode("utf-8", "replace"))  # shown on failure


# -- tmux ---------------------------------------------------------------------------------

needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


def attach(box: Box, pane: Pane, name: str, *args: str) -> subprocess.Popen[str]:
    """``relaybus tmux attach PANE --name NAME ARGS`` on ``box``'s server."""
    command = ["tmux", "attach", pane.id, "--name", name, "--quiet", "0.3", *args]
    return subprocess.Popen(
        [sys.executable, "-m", "relaybus", *command, "-S", str(box.socket)],
        env=box.env,
        cwd=box.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )


@pytest.fixture
def attached(box: Box) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``relaybus tmux attach`` processes; stops what still runs at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(pane: Pane, name: str, *args: str) -> subprocess.Popen[str]:
        started.append(attach(box, pane, name, *args))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        _, err = proc.communicate(timeout=HUNG)
        print(f"relaybus tmux attach -> {proc.returncode}, stderr:\n{err}")  # shown on failure


@needs_tmux
@pytest.mark.slow
def test_a_tmux_agent_keeps_a_short_lease_while_attached_and_loses_it_when_killed(
    box: Box, relay: Relay, attached: Callable[..., subprocess.Popen[str]]
) -> None:
    pane = box.new_pane()
    proc = attached(pane, "worker", "--cap", "long")
    registered(relay, "worker")
    task_id = claim_short(relay, "worker")
    held_throughout(relay, task_id, "worker", HOLD)
    killed_at = kill(proc.pid)
    proc.wait(HUNG)
    lapses_within_one_lease(relay, task_id, killed_at)


def claimers(
    box: Box, relay: Relay, attached: Callable[..., subprocess.Popen[str]], *args: str
) -> dict[str, Pane]:
    """Three agents with the capability ``work``, each attached to its own pane."""
    panes = {}
    for name in ("ann", "ben", "cat"):
        panes[name] = box.new_pane()
        attached(panes[name], name, "--cap", "work", "--claim-first", *args)
    for name in panes:
        registered(relay, name)
    return panes


def settle_read(relay: Relay, message_id: int) -> list[DeliveryState]:
    return [d.state for d in relay.deliveries(message_id, until="read", timeout=HUNG)]


@needs_tmux
def test_claim_first_types_a_task_into_the_winners_pane_only(
    box: Box,
    relay: Relay,
    attached: Callable[..., subprocess.Popen[str]],
    watch: Callable[[Pane], Watch],
) -> None:
    panes = claimers(box, relay, attached)
    sent = relay.agent("bob").send("cap:work", "fix the flaky test", claimable=True)
    assert sent.task_id is not None
    assert settle_read(relay, sent.id) == [DeliveryState.READ] * 3  # read either way
    winner = relay.task(sent.task_id).assignee
    assert winner in panes
    for name, pane in panes.items():
        typed = [text for _, text in inputs(watch(pane).until(lambda s: "IN|" in str(s), "input"))]
        assert len(typed) == 1, typed
        if name == winner:
            assert "fix the flaky test" in typed[0]
            assert f"task #{sent.task_id}" in typed[0]
        else:
            assert "fix the flaky test" not in typed[0]
            assert f"task {sent.task_id} was claimed by {winner}" in typed[0]


@needs_tmux
def test_claim_first_with_quiet_claims_types_nothing_into_the_losers_panes(
    box: Box,
    relay: Relay,
    attached: Callable[..., subprocess.Popen[str]],
    watch: Callable[[Pane], Watch],
) -> None:
    panes = claimers(box, relay, attached, "--quiet-claims")
    sent = relay.agent("bob").send("cap:work", "fix the flaky test", claimable=True)
    assert sent.task_id is not None
    assert settle_read(relay, sent.id) == [DeliveryState.READ] * 3
    winner = relay.task(sent.task_id).assignee
    assert winner in panes
    screen = watch(panes[winner]).until(lambda s: "IN|" in str(s), "the task")
    assert ["fix the flaky test" in text for _, text in inputs(screen)] == [True]
    # A plain message after it reaches every pane, and is the first thing the losers got.
    after = relay.agent("bob").send("cap:work", "lunch is here")
    assert settle_read(relay, after.id) == [DeliveryState.READ] * 3
    for name, pane in panes.items():
        if name == winner:
            continue
        screen = watch(pane).until(lambda s: "lunch is here" in str(s), "the plain message")
        assert ["lunch is here" in text for _, text in inputs(screen)] == [True]


def test_claim_first_under_run_types_the_task_into_one_program_of_three(
    tmp_path: Path, relay: Relay
) -> None:
    repl = str(Path(__file__).with_name("repl.py"))
    env = clean_environ()
    env.update(RELAYBUS_DIR=str(tmp_path / ".relay"), HOME=str(tmp_path / "home"))
    names = ("ann", "ben", "cat")
    runners = []
    for name in names:
        argv = [sys.executable, "-m", "relaybus", "run", "--headless", "--name", name]
        argv += ["--cap", "work", "--claim-first", "--quiet", "0.3", "--prompt", "^repl>$"]
        argv += ["--log", str(tmp_path / f"{name}.log"), "--", sys.executable, repl]
        runners.append(
            subprocess.Popen(
                argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        )  # fmt: skip
    try:
        for name in names:
            registered(relay, name)
        sent = relay.agent("bob").send("cap:work", "fix the flaky test", claimable=True)
        assert sent.task_id is not None
        assert settle_read(relay, sent.id) == [DeliveryState.READ] * 3  # read either way
        winner = relay.task(sent.task_id).assignee
        assert winner in names
        for name in names:
            log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            typed = [line for line in log.splitlines() if "IN|" in line]
            assert len(typed) == 1, log
            if name == winner:
                assert "fix the flaky test" in typed[0]
            else:
                assert "fix the flaky test" not in typed[0]
                assert f"task {sent.task_id} was claimed by {winner}" in typed[0]
    finally:
        for proc in runners:
            proc.terminate()
            _, err = proc.communicate(timeout=HUNG)
            print(err.decode("utf-8", "replace"))  # shown on failure
