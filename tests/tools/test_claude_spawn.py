"""``relaybus spawn --cli claude``: the real Claude Code CLI, spawned headless by the
warm local relay for a relaybus task, against the stand-in model API on 127.0.0.1
(:mod:`fake_anthropic`); its answer comes back as the task's result.

The preset turns ``--headless --task TEXT`` into ``claude -p TEXT``; the supervisor
runs it with no terminal and, as the spawn named the task (``--task-id``), finishes
that task when Claude Code exits: done, with what it printed as the result. So this
covers the whole path of a workflow step done by Claude Code: preflight of the real
CLI, the preset's flags as Claude Code parses them, the environment the supervisor
gives it (the caller's, with the stand-in's address), and the result.

The CLI is found as in :mod:`tests.tools.test_claude_cli` (``RELAYBUS_TEST_CLAUDE``,
``PATH``, the npm prefix ``.ci/run`` installs into); missing, the test skips, except
under CI, where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.client import warm
from tests.client.test_warm import alive, wait_gone
from tests.support.poll import until
from tests.tools.fake_anthropic import FakeAnthropic, flatten, text
from tests.tools.test_claude_cli import HUNG, QUIET, RELAYBUS, claude  # noqa: F401 (fixture)

TASK_TEXT = "Count the open review comments in PR 7 and answer with the count."
ANSWER = "STEP-RESULT: 3 open review comments"


def model(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The model: the session's turn (it offers tools) gets :data:`ANSWER`, Claude
    Code's side calls (titles and such) "ok"."""
    if request.get("tools") and TASK_TEXT in flatten(request["messages"]):
        return [text(ANSWER)]
    return [text("ok")]


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: the warm relay's socket lives under it (a socket path has at most 107 bytes).
    folder = Path(tempfile.mkdtemp(prefix="rbsp-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def claude_project(cli: str, root: Path) -> tuple[Path, Path, dict[str, str]]:
    """Under ``root``: a home with a git project ``shop`` and a relay folder, and the
    environment that runs the real Claude Code CLI there, offline but for the stand-in
    (its ``ANTHROPIC_BASE_URL`` is the caller's to add): (project, relay folder, env)."""
    home, project, relay_dir = root / "home", root / "home" / "shop", root / "relay"
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR")}
    path = [str(Path(cli).parent), str(Path(sys.executable).parent)]
    env.update(
        QUIET,
        HOME=str(home),
        PATH=os.pathsep.join([*path, os.environ.get("PATH", "/usr/bin:/bin")]),
        RELAYBUS_DIR=str(relay_dir),
        XDG_STATE_HOME=str(root / "state"),
        XDG_CONFIG_HOME=str(home / ".config"),
        ANTHROPIC_API_KEY="sk-ant-test-not-a-key",
    )
    return project, relay_dir, env


def relaybus(env: dict[str, str], cwd: Path, *args: str) -> Any:
    """``relaybus ARGS --json`` to completion: its JSON answer."""
    done = subprocess.run(
        [RELAYBUS, *args, "--json"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert done.returncode == 0, f"relaybus {args} -> {done.returncode}\n{done.stdout}{done.stderr}"
    return json.loads(done.stdout)


def test_spawned_claude_code_finishes_its_task_with_the_models_answer(
    claude: str,  # noqa: F811 (the fixture)
    root: Path,
) -> None:
    project, relay_dir, env = claude_project(claude, root)
    api = FakeAnthropic(model)
    pid: int | None = None
    try:
        with api.running():
            env["ANTHROPIC_BASE_URL"] = api.url
            relaybus(env, project, "register", "reviewers", "--cap", "review")
            task = relaybus(env, project, "task", "create", "PR 7", "--to", "cap:review")
            agent = relaybus(
                env,
                project,
                "spawn",
                "counter",
                "--cli",
                "claude",
                "--headless",
                "--task",
                TASK_TEXT,
                "--task-id",
                str(task["id"]),
            )
            pid = agent["pid"]
            assert agent["command"] == ["claude", "-p", TASK_TEXT]
            assert agent["cli"] == "claude" and agent["cwd"] == str(project.resolve())

            def finished() -> Any:
                shown = relaybus(env, project, "task", str(task["id"]))
                return shown if shown["status"] in ("done", "failed") else None

            shown = until(finished, HUNG)
            logs = relaybus(env, project, "logs", "counter")["lines"]
            assert shown, f"the task did not finish; claude's output: {logs}"
            assert shown["status"] == "done", (shown, logs)
            assert ANSWER in shown["result"]
            assert ANSWER in "\n".join(logs)
            asked = [r for r in api.recorded.all() if TASK_TEXT in flatten(r["messages"])]
            assert asked, "Claude Code never sent the task to the model"

            def mark() -> Any:
                found = [a for a in relaybus(env, project, "agents") if a["id"] == "counter"]
                return found[0].get("spawned", {}) if found else {}

            assert until(lambda: mark().get("state") == "exited", HUNG), mark()
            assert mark()["exit_code"] == 0
    finally:
        with contextlib.suppress(Exception), Relay.open(dir=relay_dir) as relay:
            for spawned in relay.spawned():
                if str(spawned.state) in ("running", "restarting"):
                    relay.release(spawned.name, timeout=5.0)
        warm.stop(relay_dir)
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            wait_gone(pid)
