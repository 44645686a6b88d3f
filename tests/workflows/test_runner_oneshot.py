"""A headless preset agent in a workflow (``cli: claude``, ``headless: true``): it runs
once per step, with the step's task as its prompt (``claude -p TASK``), and its output
is the step's result.

The ``claude`` here is a stand-in program on ``PATH`` (it answers ``--version`` and
prints an answer for ``-p TASK``, or fails when the task asks it to), so this covers the
runner's side: the agent registered but not started with the run, spawned for each of
its tasks with the task's text and id, the supervisor finishing the task from its exit
(done with the output; failed, then retried), and the agent released at the end. The
real Claude Code CLI does the same in tests/tools/test_claude_workflow.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workflows import run_workflow, spawning_env, warm_relay_dir

pytestmark = pytest.mark.slow

WAIT = 120.0

#: The stand-in: ``claude --version``; ``claude -p TASK``: "ANSWER(TASK)", or exit 3
#: the first time a task says FLAKY (a file in its folder remembers it).
CLAUDE = """\
#!{python}
import pathlib, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("2.1.197 (Claude Code)")
    sys.exit(0)
task = args[args.index("-p") + 1]
seen = pathlib.Path(__file__).with_name("flaky-seen")
if "FLAKY" in task and not seen.exists():
    seen.write_text("1")
    print("model overloaded", file=sys.stderr)
    sys.exit(3)
print(f"ANSWER({{task}})")
"""

FLOW = """\
version: 1
name: oneshot
defaults: {timeout: 1m}
agents:
  planner:
    cli: claude
    headless: true
steps:
  plan:
    agent: planner
    task: plan the change
  check:
    agent: planner
    depends_on: [plan]
    task: "FLAKY check {{ steps.plan.result }}"
    retries: 1
    verify: {contains: "ANSWER(FLAKY check ANSWER(plan the change))"}
"""


@pytest.fixture
def relay_dir(tmp_path: Path) -> Iterator[Path]:
    yield from warm_relay_dir(tmp_path)


def test_a_headless_preset_runs_once_per_step_and_its_output_is_the_result(
    tmp_path: Path, relay_dir: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(CLAUDE.format(python=sys.executable), encoding="utf-8")
    claude.chmod(0o755)
    (tmp_path / "oneshot.yaml").write_text(FLOW, encoding="utf-8")
    env = spawning_env(relay_dir)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "/usr/bin:/bin")])

    done, found = run_workflow("oneshot.yaml", tmp_path, env, WAIT * 2)

    assert done.returncode == 0, (done.stdout, done.stderr)
    spawned = [e for e in found if e["event"] == "agent.spawned"]
    # once per task: plan, the failed check, the retried check; never at the start
    assert [e["agent"] for e in spawned] == ["planner"] * 3, spawned
    offered = {e["task"] for e in found if e["event"] == "step.offered"}
    assert {e["task"] for e in spawned} == offered
    finished = {e["step"]: e for e in found if e["event"] == "step.done"}
    assert finished["plan"]["result"] == "ANSWER(plan the change)"
    assert finished["check"]["result"] == "ANSWER(FLAKY check ANSWER(plan the change))"
    assert finished["check"]["attempt"] == 2
    assert [e["step"] for e in found if e["event"] == "step.retry"] == ["check"]
    assert [e["agent"] for e in found if e["event"] == "agent.released"] == ["planner"]
