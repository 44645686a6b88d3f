"""The main path with spawning: ``relaybus workflow run`` spawns the file's ``agents:``
(scripted agents, one in a PTY under ``relaybus run``, one headless) through the warm
local relay's supervisor, runs its steps on them and releases them at the end."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.models import SpawnedState
from tests.support import scripted_agent
from tests.support.poll import until
from tests.support.workflows import run_workflow, spawning_env, warm_relay_dir

pytestmark = pytest.mark.slow

WAIT = 90.0
AGENT = Path(scripted_agent.__file__).resolve()

FLOW = """\
version: 1
name: spawned
defaults: {{timeout: 1m}}
agents:
  writer:
    command: [{python}, {agent}, writer, --echo]
  checker:
    command: [{python}, {agent}, checker, --result, "checked: LGTM"]
    capabilities: [check]
    headless: true
steps:
  draft:
    agent: writer
    task: draft for {{{{ workflow.name }}}}
  check:
    capability: check
    depends_on: [draft]
    task: "check {{{{ steps.draft.result }}}}"
    verify: {{contains: LGTM}}
"""


@pytest.fixture
def relay_dir(tmp_path: Path) -> Iterator[Path]:
    yield from warm_relay_dir(tmp_path)


def test_run_spawns_the_files_agents_runs_the_steps_and_releases_them(
    tmp_path: Path, relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = FLOW.format(python=json.dumps(sys.executable), agent=json.dumps(str(AGENT)))
    (tmp_path / "spawned.yaml").write_text(flow, encoding="utf-8")
    done, found = run_workflow("spawned.yaml", tmp_path, spawning_env(relay_dir), WAIT * 2)

    assert done.returncode == 0, (done.stdout, done.stderr)
    assert sorted(e["agent"] for e in found if e["event"] == "agent.spawned") == [
        "checker",
        "writer",
    ]
    assert sorted(e["agent"] for e in found if e["event"] == "agent.released") == [
        "checker",
        "writer",
    ]
    (check,) = [e for e in found if e["event"] == "step.done" and e["step"] == "check"]
    assert check["agent"] == "checker" and check["result"] == "checked: LGTM"
    (draft,) = [e for e in found if e["event"] == "step.done" and e["step"] == "draft"]
    assert draft["agent"] == "writer" and draft["result"] == "draft for spawned"
    monkeypatch.delenv("RELAYBUS_DAEMON")  # spawned() asks the warm relay
    with Relay.open(dir=relay_dir) as relay:
        assert until(
            lambda: all(a.state == SpawnedState.RELEASED for a in relay.spawned()), WAIT
        ), relay.spawned()
        assert {a.name for a in relay.spawned()} == {"writer", "checker"}


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "review.yaml"


def test_the_review_example_runs_its_spawned_agents_to_the_merge(
    tmp_path: Path, relay_dir: Path
) -> None:
    env = spawning_env(relay_dir)
    # The example's agents run `python3 -m relaybus...`: this interpreter's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])

    done, found = run_workflow(EXAMPLE, tmp_path, env, WAIT * 2)

    assert done.returncode == 0, (done.stdout, done.stderr)
    finished = {e["step"]: e for e in found if e["event"] == "step.done"}
    assert finished["review"]["agent"] in {"bob", "carol", "dave"}
    assert finished["review"]["result"].startswith("APPROVED")
    assert finished["merge"]["agent"] == "alice" and "merged" in finished["merge"]["result"]
    released = sorted(e["agent"] for e in found if e["event"] == "agent.released")
    assert released == ["alice", "bob", "carol", "dave"]
