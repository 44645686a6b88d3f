"""Following agent processes: a failing agent stops the demo at once."""

from __future__ import annotations

import sys
from pathlib import Path

from relaybus import Relay
from relaybus.workflows.demo_render import Step
from relaybus.workflows.demo_run import DemoRun
from relaybus.workflows.demo_workflow import DemoAgent


def _agents(program: str, reviewers: list[str]) -> list[DemoAgent]:
    """Stand-in agents: ``program`` run with its role and name."""
    command = (sys.executable, "-c", program)
    return [
        DemoAgent("alice", "author", (*command, "author", "alice")),
        *(DemoAgent(name, "reviewer", (*command, "reviewer", name)) for name in reviewers),
    ]


# Stands in for the agent program: the author fails at once, reviewers hang
# until a signal ends them.
FAKE_AGENT = """
import signal, sys
if sys.argv[1] == "author":
    print("boom", file=sys.stderr)
    sys.exit(3)
signal.pause()
"""


def test_failing_agent_stops_the_others_before_the_timeout(tmp_path: Path) -> None:
    steps: list[Step] = []
    with Relay.open(dir=tmp_path / ".relay") as relay:
        run = DemoRun(
            relay,
            tmp_path / ".relay",
            _agents(FAKE_AGENT, ["bob", "carol"]),
            timeout=600.0,  # never reached: the author's failure stops the run
            on_step=steps.append,
        )
        try:
            run.start()
            run.follow()
            observations = run.observations(None)
        finally:
            run.close()

    assert observations.exit_codes == {"alice": 3, "bob": None, "carol": None}
    assert run.children["alice"].stderr == ["boom"]
    texts = [s.text for s in steps if s.kind in ("failed", "killed")]
    assert texts[0] == "✗ alice exited 3: stopping the other agents"
    assert sorted(t.split(" (pid")[0] for t in texts[1:]) == ["✗ bob", "✗ carol"]
    assert all(t.endswith("stopped after alice failed: killed") for t in texts[1:])


# bob reports first, then registers; alice waits for that registration and only
# then reports something that happened an hour earlier: it arrives last but
# belongs first.
LATE_REPORTER = """
import json, sys, time
from relaybus import Relay

def report(agent, t):
    line = {"agent": agent, "event": "claim_lost", "task_id": 1, "holder": "carol",
            "status": "claimed", "t": t}
    print(json.dumps(line), flush=True)

role, name = sys.argv[1], sys.argv[2]
with Relay.open() as relay:
    if role == "reviewer":
        report(name, time.time())
        relay.register(name)
    else:
        cursor = 0
        while not any(e.kind == "agent.registered" for e in relay.events(since=0)):
            found = relay.wait_events(60, since=cursor)
            cursor = found[-1].id if found else cursor
        report(name, time.time() - 3600)
"""


def test_lines_come_out_in_time_order_whatever_order_they_arrive_in(tmp_path: Path) -> None:
    steps: list[Step] = []
    with Relay.open(dir=tmp_path / ".relay") as relay:
        run = DemoRun(
            relay,
            tmp_path / ".relay",
            _agents(LATE_REPORTER, ["bob"]),
            timeout=120.0,
            on_step=steps.append,
            hold=600.0,  # only the sources' own progress lets a line out
            register=False,  # the stand-ins register (or not) themselves
        )
        try:
            run.start()
            run.follow()
        finally:
            run.close()

    assert [s.t_ms for s in steps] == sorted(s.t_ms for s in steps)
    assert [(s.kind, s.agent) for s in steps] == [
        ("claim_lost", "alice"),
        ("started", None),
        ("claim_lost", "bob"),
        ("agent.registered", "bob"),
    ]
    assert run.steps == steps
