"""A workflow step done by the real Claude Code CLI: ``relaybus workflow run`` on a file
whose agent is ``cli: claude`` with ``headless: true``, against the stand-in model API
on 127.0.0.1 (:mod:`fake_anthropic`). The runner offers the step as a task, spawns
``claude -p TASK`` for it through the warm local relay, and the step's result is what
Claude Code answered (the model's text), checked by the step's ``verify``.

The CLI is found as in :mod:`tests.tools.test_claude_cli`; missing, the test skips,
except under CI, where it fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from relaybus.client import warm
from tests.tools.fake_anthropic import FakeAnthropic, flatten, text
from tests.tools.test_claude_cli import HUNG, RELAYBUS, claude  # noqa: F401 (fixture)
from tests.tools.test_claude_spawn import claude_project, root  # noqa: F401 (fixture)

TASK_TEXT = "List the modules that log request ids and answer with their count."
ANSWER = "STEP-RESULT: 4 modules log request ids"

FLOW = f"""\
version: 1
name: counted
defaults: {{timeout: 3m}}
agents:
  counter:
    cli: claude
    headless: true
steps:
  count:
    agent: counter
    task: "{TASK_TEXT}"
    verify: {{contains: "STEP-RESULT"}}
"""


def model(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's turn (it offers tools) gets :data:`ANSWER`; side calls "ok"."""
    if request.get("tools") and TASK_TEXT in flatten(request["messages"]):
        return [text(ANSWER)]
    return [text("ok")]


def test_a_workflow_step_done_by_claude_code_comes_back_as_its_result(
    claude: str,  # noqa: F811 (the fixture)
    root: Path,  # noqa: F811 (the fixture)
) -> None:
    project, relay_dir, env = claude_project(claude, root)
    (project / "counted.yaml").write_text(FLOW, encoding="utf-8")
    api = FakeAnthropic(model)
    try:
        with api.running():
            env["ANTHROPIC_BASE_URL"] = api.url
            done = subprocess.run(
                [RELAYBUS, "workflow", "run", "counted.yaml", "--json"],
                cwd=project,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                timeout=HUNG,
                check=False,
            )
            assert done.returncode == 0, (done.stdout, done.stderr)
            found = [json.loads(line) for line in done.stdout.splitlines()]
            (step,) = [e for e in found if e["event"] == "step.done"]
            assert step["step"] == "count" and ANSWER in step["result"]
            assert [e["agent"] for e in found if e["event"] == "agent.spawned"] == ["counter"]
            asked = [r for r in api.recorded.all() if TASK_TEXT in flatten(r["messages"])]
            assert asked, "Claude Code never sent the step's task to the model"
    finally:
        warm.stop(relay_dir)
