"""``relaybus demo`` end to end: real agent processes on a real temporary relay."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from relaybus.errors import InvalidInput
from relaybus.workflows.demo import Observations, check_invariants, exit_code, run_demo
from tests.support.env import clean_environ

SRC = Path(__file__).resolve().parents[2] / "src"
# Generous: startup of a few Python processes on a loaded CI machine; never reached normally.
TIMEOUT = 120.0


def _events(doc: dict[str, Any], agent: str, event: str) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = doc["observations"]["reports"][agent]
    return [r for r in reports if r["event"] == event]


@pytest.mark.slow
def test_demo_has_one_winner_among_three_reviewers_and_holds_every_invariant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_demo(json_output=True, timeout=TIMEOUT)

    doc = json.loads(capsys.readouterr().out)
    failed = [inv for inv in doc["invariants"] if not inv["ok"]]
    assert failed == [] and code == 0 and doc["ok"] is True, failed
    reviewers = doc["reviewers"]
    assert reviewers == ["bob", "carol", "dave"]
    winners = [r for r in reviewers if _events(doc, r, "claim_won")]
    assert winners == [doc["winner"]]
    winner = doc["winner"]
    for loser in set(reviewers) - {winner}:
        assert [r["holder"] for r in _events(doc, loser, "claim_lost")] == [winner]
    obs = doc["observations"]
    replies = [m for m in obs["thread"] if m["reply_to"] == obs["task_message_id"]]
    assert [m["sender"] for m in replies] == [winner]
    assert [r["message_id"] for r in _events(doc, "alice", "got_reply")] == [replies[0]["id"]]
    (broadcast,) = _events(doc, "alice", "broadcast")
    assert sorted(broadcast["recipients"]) == reviewers
    for reviewer in reviewers:
        got = [r["message_id"] for r in _events(doc, reviewer, "got_broadcast")]
        assert got == [broadcast["message_id"]]
    assert obs["task_status"] == "done"
    assert all(agent["exit_code"] == 0 for agent in doc["agents"].values())
    # The conversation, with per-step timings, as printed.
    kinds = [(s["kind"], s["agent"]) for s in doc["steps"]]
    assert ("task.claimed", winner) in kinds
    assert sum(kind == "claim_lost" for kind, _ in kinds) == 2
    assert all(isinstance(s["t_ms"], float) for s in doc["steps"])
    assert not Path(doc["relay_dir"]).exists()  # the temporary directory is gone
    # The checker agrees with itself on the real observations, and a doctored
    # copy of them (a second winner) fails.
    real = Observations.from_dict(obs)
    assert exit_code(check_invariants(real)) == 0
    loser = next(r for r in reviewers if r != winner)
    reports = {**real.reports, loser: [*real.reports[loser], {"event": "claim_won"}]}
    doctored = check_invariants(Observations.from_dict({**obs, "reports": reports}))
    assert exit_code(doctored) == 1
    assert not next(i for i in doctored if i.name == "exactly one reviewer won the claim").ok


@pytest.mark.slow
def test_demo_module_with_five_reviewers_prints_the_conversation_as_plain_text(
    tmp_path: Path,
) -> None:
    env = clean_environ()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "relaybus.workflows.demo", "--reviewers", "5"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=TIMEOUT + 30,
    )

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "\x1b[" not in out  # stdout is a pipe: no colour codes
    # The workflow's review step is the task the reviewers race for.
    offered = re.search(r"step review: task #(\d+) offered to cap:review$", out, re.MULTILINE)
    assert offered is not None, out
    task = offered.group(1)
    claimed = re.findall(rf"\+ *[\d.]+ ms  (\S+) claimed task #{task}$", out, re.MULTILINE)
    assert len(claimed) == 1
    winner = claimed[0]
    # A loser slow enough to claim after the winner finished the task says so.
    lost = rf"^ *\+ *[\d.]+ ms  (\S+): task #{task} already (?:claimed|done, claimed) by (\S+)$"
    losers = re.findall(lost, out, re.MULTILINE)
    assert sorted(losers) == sorted(
        (r, winner) for r in ("bob", "carol", "dave", "erin", "frank") if r != winner
    )
    assert re.search(rf"{winner} → tag:author  #\d+ \"LGTM", out)
    assert re.search(r"workflow review run #1 done$", out, re.MULTILINE)
    assert re.search(r'alice → broadcast  #\d+ "thanks all, PR #42 merged"', out)
    assert out.count("  ✓ ") == 8 and "  ✗ " not in out
    assert "✓ demo passed: all 8 invariants held" in out


def test_demo_kills_agents_that_outlive_the_timeout_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No Python process gets as far as importing relaybus in a millisecond.
    code = run_demo(reviewers=2, json_output=True, timeout=0.001)

    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False
    assert all(agent["killed"] for agent in doc["agents"].values())
    killed = [s for s in doc["steps"] if s["kind"] == "killed"]
    assert sorted(s["agent"] for s in killed) == ["alice", "bob", "carol"]
    assert all("still running after 0.001 s: killed" in s["text"] for s in killed)
    exits = next(i for i in doc["invariants"] if i["name"] == "every agent process exited 0")
    assert exits["ok"] is False
    assert "alice was killed by the demo" in exits["detail"]
    for pid in (agent["pid"] for agent in doc["agents"].values()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: nothing left behind


@pytest.mark.parametrize(("reviewers", "timeout"), [(0, 60.0), (51, 60.0), (3, 0.0)])
def test_demo_refuses_bad_settings_before_starting_anything(
    reviewers: int, timeout: float, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidInput):
        run_demo(reviewers=reviewers, json_output=True, timeout=timeout)

    assert capsys.readouterr().out == ""
