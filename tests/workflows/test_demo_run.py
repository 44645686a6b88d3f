"""Following agent processes: a failing agent stops the demo at once."""

from __future__ import annotations

import sys
from pathlib import Path

from relaybus import Relay
from relaybus.workflows.demo_render import Step
from relaybus.workflows.demo_run import DemoRun

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
            ["bob", "carol"],
            timeout=600.0,  # never reached: the author's failure stops the run
            on_step=steps.append,
            program=[sys.executable, "-c", FAKE_AGENT],
        )
        try:
            run.start()
            run.follow()
            observations = run.observations()
        finally:
            run.close()

    assert observations.exit_codes == {"alice": 3, "bob": None, "carol": None}
    assert run.children["alice"].stderr == ["boom"]
    texts = [s.text for s in steps if s.kind in ("failed", "killed")]
    assert texts[0] == "✗ alice exited 3: stopping the other agents"
    assert sorted(t.split(" (pid")[0] for t in texts[1:]) == ["✗ bob", "✗ carol"]
    assert all(t.endswith("stopped after alice failed: killed") for t in texts[1:])
