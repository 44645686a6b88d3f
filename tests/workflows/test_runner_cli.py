"""``relaybus workflow run|status|resume|cancel`` as real processes, with scripted
agents (tests/support/scripted_agent.py) started by the test: JSON lines, exit codes,
a runner killed with SIGKILL and resumed, a cancel."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.models import WorkflowRun
from tests.support.env import clean_environ
from tests.support.poll import until
from tests.support.scripted_agent import Agents

pytestmark = pytest.mark.slow

WAIT = 60.0

CHAIN = """\
version: 1
name: chain
defaults: {timeout: 1m}
steps:
  first:
    agent: quick
    task: first of {{ workflow.name }}
  second:
    agent: slow
    depends_on: [first]
    task: "second after {{ steps.first.result }}"
  third:
    agent: quick
    depends_on: [second]
    task: "third after {{ steps.second.result }}"
"""

HUNG = """\
version: 1
name: hung
steps:
  wait:
    agent: sleeper
    task: never answered
"""


@pytest.fixture
def relay_dir(tmp_path: Path) -> Path:
    return tmp_path / ".relay"


@pytest.fixture
def relay(relay_dir: Path) -> Iterator[Relay]:
    with Relay.open(dir=relay_dir) as opened:
        yield opened


@pytest.fixture
def env(relay_dir: Path) -> dict[str, str]:
    found = clean_environ()
    found["RELAYBUS_DIR"] = str(relay_dir)
    return found


@pytest.fixture
def agents(tmp_path: Path, env: dict[str, str], relay: Relay) -> Iterator[Agents]:
    started = Agents(tmp_path, env)
    yield started
    started.stop()


@pytest.fixture
def runners() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()  # by its pid: a runner this test started
        proc.communicate()


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaybus", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=WAIT * 2,
        check=False,
    )


def start_runner(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "relaybus", "workflow", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ready(agents: Agents, *names: str) -> None:
    for name in names:
        assert until(functools.partial(agents.events, name, "ready"), WAIT), agents.lines(name)


def tasks_per_step(relay: Relay, run_id: int) -> Counter[str]:
    return Counter(
        str(t.meta["step"]) for t in relay.tasks(limit=1000) if t.meta.get("run") == run_id
    )


def latest(relay: Relay, name: str) -> WorkflowRun | None:
    found = relay.workflow_runs(name=name, limit=1)
    return found[0] if found else None


def step_status(relay: Relay, name: str, step: str) -> str | None:
    run = latest(relay, name)
    if run is None:
        return None
    status: str | None = run.state.get("steps", {}).get(step, {}).get("status")
    return status


def test_run_prints_json_lines_and_status_shows_the_finished_run(
    tmp_path: Path, env: dict[str, str], agents: Agents, relay: Relay
) -> None:
    (tmp_path / "chain.yaml").write_text(CHAIN, encoding="utf-8")
    agents.start("quick", "--echo")
    agents.start("slow", "--echo")
    ready(agents, "quick", "slow")

    done = cli(env, tmp_path, "workflow", "run", "chain.yaml", "--json")

    assert done.returncode == 0, done.stderr
    found = events(done.stdout)
    assert found[0]["event"] == "run.started" and found[-1]["event"] == "run.finished"
    assert found[-1]["status"] == "done"
    (last,) = [e for e in found if e["event"] == "step.done" and e["step"] == "third"]
    assert last["result"] == "third after second after first of chain"
    status = cli(env, tmp_path, "workflow", "status", "chain.yaml", "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["status"] == "done" and document["name"] == "chain"
    assert document["id"] == found[0]["run"]
    assert [s["status"] for s in document["state"]["steps"].values()] == ["done"] * 3
    text = cli(env, tmp_path, "workflow", "status", str(found[0]["run"]))
    assert text.returncode == 0
    assert f"workflow chain: run {found[0]['run']} done" in text.stdout
    assert "third" in text.stdout


def test_plain_progress_is_a_line_per_event_when_not_a_terminal(
    tmp_path: Path, env: dict[str, str], agents: Agents
) -> None:
    (tmp_path / "chain.yaml").write_text(CHAIN, encoding="utf-8")
    agents.start("quick", "--echo")
    agents.start("slow", "--echo")
    ready(agents, "quick", "slow")

    done = cli(env, tmp_path, "workflow", "run", "chain.yaml")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "workflow chain: run" in lines[0] and lines[0].endswith("started")
    assert any("first: offered to quick (task #" in line for line in lines)
    assert lines[-1].endswith("done")


def test_bad_input_exits_2_with_one_line(tmp_path: Path, env: dict[str, str], relay: Relay) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nsteps: {}\n", encoding="utf-8")

    bad = cli(env, tmp_path, "workflow", "run", "bad.yaml")
    missing = cli(env, tmp_path, "workflow", "status", "404")
    neither = cli(env, tmp_path, "workflow", "resume", "nothing-here")

    for done in (bad, missing, neither):
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert "bad.yaml:" in bad.stderr
    assert "no workflow run 404" in missing.stderr


def test_resume_after_the_runner_is_killed_repeats_no_finished_step(
    tmp_path: Path,
    env: dict[str, str],
    agents: Agents,
    relay: Relay,
    runners: list[subprocess.Popen[str]],
) -> None:
    (tmp_path / "chain.yaml").write_text(CHAIN, encoding="utf-8")
    agents.start("quick", "--echo")
    agents.start("slow", "--echo", "--sleep", "2")
    ready(agents, "quick", "slow")
    first = start_runner(env, tmp_path, "run", "chain.yaml", "--json")
    runners.append(first)
    assert until(lambda: agents.events("slow", "claimed"), WAIT)
    assert until(lambda: step_status(relay, "chain", "second") in ("offered", "running"), WAIT)

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    resumed = cli(env, tmp_path, "workflow", "resume", "chain.yaml", "--json")

    assert resumed.returncode == 0, resumed.stderr
    found = events(resumed.stdout)
    assert found[0]["event"] == "run.resumed"
    assert not [e for e in found if e.get("step") == "first"]  # finished: not touched
    run = latest(relay, "chain")
    assert run is not None and run.status.value == "done"
    assert tasks_per_step(relay, run.id) == {"first": 1, "second": 1, "third": 1}
    assert run.state["steps"]["third"]["result"] == "third after second after first of chain"
    assert len(agents.events("slow", "claimed")) == 1
    again = cli(env, tmp_path, "workflow", "resume", str(run.id))
    assert again.returncode == 1
    assert f"workflow run {run.id} is done: nothing to resume" in again.stderr


def test_resume_refuses_a_run_whose_runner_is_alive(
    tmp_path: Path,
    env: dict[str, str],
    agents: Agents,
    relay: Relay,
    runners: list[subprocess.Popen[str]],
) -> None:
    (tmp_path / "hung.yaml").write_text(HUNG, encoding="utf-8")
    agents.start("sleeper", "--hang")
    ready(agents, "sleeper")
    runner = start_runner(env, tmp_path, "run", "hung.yaml", "--json")
    runners.append(runner)
    assert until(lambda: agents.events("sleeper", "hanging"), WAIT)

    refused = cli(env, tmp_path, "workflow", "resume", "hung.yaml")

    assert refused.returncode == 1
    assert "is held by the runner" in refused.stderr


def test_cancel_stops_the_runner_and_cancels_the_open_task(
    tmp_path: Path,
    env: dict[str, str],
    agents: Agents,
    relay: Relay,
    runners: list[subprocess.Popen[str]],
) -> None:
    (tmp_path / "hung.yaml").write_text(HUNG, encoding="utf-8")
    agents.start("sleeper", "--hang")
    ready(agents, "sleeper")
    runner = start_runner(env, tmp_path, "run", "hung.yaml", "--json")
    runners.append(runner)
    assert until(lambda: agents.events("sleeper", "hanging"), WAIT)

    cancelled = cli(env, tmp_path, "workflow", "cancel", "hung.yaml", "--json")

    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    out, err = runner.communicate(timeout=WAIT)
    assert runner.returncode == 1, err
    assert events(out)[-1] == {**events(out)[-1], "event": "run.finished", "status": "cancelled"}
    run = latest(relay, "hung")
    assert run is not None and run.status.value == "cancelled"
    (task,) = [t for t in relay.tasks() if t.meta.get("run") == run.id]
    assert task.status.value == "canceled"
    again = cli(env, tmp_path, "workflow", "cancel", str(run.id))
    assert again.returncode == 1 and "nothing to cancel" in again.stderr
