"""``relaybus spawn``, ``input``, ``screen``, ``logs``, ``release NAME`` and the marks of
``agents``, end to end: the real ``relaybus`` console script in subprocesses, the warm
local relay it starts supervising a small scripted agent program (in a PTY under
``relaybus run``, or headless), on a relay folder in a temporary directory.

Every test releases what it spawned and stops the warm relay (by its pid); a spawned
program still alive at the end is killed by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.client import warm
from tests.client.test_warm import alive, wait_gone
from tests.support.env import clean_environ
from tests.support.poll import until

#: The installed console script.
RELAYBUS = str(Path(sys.executable).parent / "relaybus")
#: Generous: a command, or a spawned program starting, on a loaded 2-core machine.
HUNG = 60.0

#: The scripted agent: says it is ready, echoes each line typed in, exits on "quit"
#: (with the code after it: "quit 3"); headless, prints its task (argv) and exits with
#: the code in $AGENT_EXIT.
AGENT = """\
import os, sys
if len(sys.argv) > 1:
    print("working on:", " ".join(sys.argv[1:]))
    print("RESULT", os.environ.get("RELAYBUS_AGENT"), "did", " ".join(sys.argv[1:]))
    sys.exit(int(os.environ.get("AGENT_EXIT", "0")))
print("agent ready as", os.environ.get("RELAYBUS_AGENT"), flush=True)
for line in sys.stdin:
    line = line.strip()
    if line.startswith("quit"):
        sys.exit(int(line.split()[1]) if " " in line else 0)
    print("got:", line, flush=True)
"""


@dataclass(frozen=True)
class Done:
    """One finished ``relaybus`` process."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"relaybus {' '.join(self.args)} -> {self.code}\n{self.out}\n{self.err}"


@dataclass
class Spawner:
    """The console script on one relay folder, with the warm relay on."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)

    @property
    def relay_dir(self) -> Path:
        return self.root / ".relay"

    def __call__(self, *args: str, **env: str) -> Done:
        proc = subprocess.run(
            [RELAYBUS, *args],
            cwd=self.root,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            timeout=HUNG,
            check=False,
        )
        return Done(args, proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **env: str) -> Done:
        done = self(*args, **env)
        assert done.code == 0, done
        return done

    def spawn(self, name: str, *args: str, **env: str) -> dict[str, Any]:
        """``relaybus spawn NAME ARGS --json``: the spawned agent (its pid remembered)."""
        agent: dict[str, Any] = self.ok("spawn", name, "--json", *args, **env).json()
        if agent.get("pid"):
            self.pids.add(agent["pid"])
        return agent

    def spawned(self, name: str) -> dict[str, Any]:
        """``agents --json``'s agent ``name`` (its ``spawned`` mark included)."""
        found = [a for a in self.ok("agents", "--json").json() if a["id"] == name]
        return found[0] if found else {}


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Spawner]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    env = clean_environ()
    env.pop("RELAYBUS_DAEMON", None)  # the suite turns the warm relay off; spawning needs it
    env["RELAYBUS_DIR"] = str(root / ".relay")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    setup = Spawner(root, env)
    try:
        yield setup
    finally:
        with contextlib.suppress(Exception):
            with Relay.open(dir=setup.relay_dir) as relay:
                for agent in relay.spawned():
                    if agent.pid:
                        setup.pids.add(agent.pid)
                    if str(agent.state) in ("running", "restarting"):
                        relay.release(agent.name, timeout=5.0)
        warm.stop(setup.relay_dir)
        for pid in setup.pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                wait_gone(pid)


AGENT_CMD = ("--", sys.executable, "agent.py")


def test_spawned_agent_is_registered_marked_typed_into_shown_logged_and_released(
    spawner: Spawner,
) -> None:
    agent = spawner.spawn("echo", "--cap", "echo", "--tag", "demo", *AGENT_CMD)
    assert agent["name"] == "echo" and agent["state"] == "running" and agent["pid"] > 0
    assert agent["command"] == [sys.executable, "agent.py"] and not agent["headless"]
    assert agent["cwd"] == str(spawner.root.resolve())

    # it outlives the command that spawned it, registered under its name by relaybus run
    assert until(lambda: spawner.spawned("echo").get("status") in ("online", "idle"), HUNG)
    listed = spawner.spawned("echo")
    assert listed["capabilities"] == ["echo"] and listed["tags"] == ["demo"]
    assert listed["spawned"] == {
        "pid": agent["pid"],
        "state": "running",
        "restarts": 0,
        "exit_code": None,
    }
    table = spawner.ok("agents").out
    assert f"pid {agent['pid']}" in table

    assert until(lambda: "agent ready as echo" in spawner.ok("screen", "echo").out, HUNG)
    typed = spawner.ok("input", "echo", "hello there", "--enter")
    assert typed.out.strip() == "typed 11 character(s) into echo and Enter"
    assert until(lambda: "got: hello there" in spawner.ok("screen", "echo").out, HUNG)
    shown = spawner.ok("screen", "echo", "--json").json()
    assert shown["name"] == "echo" and shown["columns"] > 0 and shown["rows"] > 0
    assert any("got: hello there" in line for line in shown["lines"])

    logs = spawner.ok("logs", "echo").out.splitlines()
    assert "agent ready as echo" in logs and "got: hello there" in logs
    assert spawner.ok("logs", "echo", "-n", "1", "--json").json() == {
        "name": "echo",
        "lines": logs[-1:],
    }

    released = spawner.ok("release", "echo", "--reason", "done for today")
    # relaybus run ends with 128 + SIGTERM
    assert released.out == "released echo (exit code 143); it is offline and not restarted\n"
    wait_gone(agent["pid"])
    after = spawner.spawned("echo")
    assert after.get("status", "offline") == "offline"
    assert after.get("spawned", {}).get("state", "released") == "released"


def test_release_of_a_task_id_still_releases_the_task(spawner: Spawner) -> None:
    spawner.ok("register", "alice")
    spawner.ok("register", "bob")
    spawner.ok("--as", "bob", "send", "--to", "alice", "--claimable", "--subject", "fix", "it")
    [task] = spawner.ok("--as", "alice", "tasks", "--json").json()
    spawner.ok("--as", "alice", "claim", str(task["id"]))
    done = spawner.ok("--as", "alice", "release", str(task["id"]))
    assert done.out.strip() == f"released task #{task['id']}; it is open again"
    refused = spawner("--as", "alice", "release", str(task["id"]), "--reason", "x")
    assert refused.code == 2
    assert refused.err.strip() == (
        "relaybus: error: --reason and --timeout are for a spawned agent's NAME, not a task ID"
    )


def test_headless_agent_runs_its_task_and_its_exit_finishes_the_task(spawner: Spawner) -> None:
    spawner.ok("register", "pool", "--cap", "sum")
    task = spawner.ok("task", "create", "sum", "--to", "cap:sum", "--json").json()
    agent = spawner.spawn(
        "adder",
        "--headless",
        "--task-id",
        str(task["id"]),
        "--",
        sys.executable,
        "agent.py",
        "add",
        "the",
        "numbers",
    )
    assert agent["headless"] and agent["task_id"] == task["id"]

    def finished() -> dict[str, Any] | None:
        shown: dict[str, Any] = spawner.ok("task", str(task["id"]), "--json").json()
        return shown if shown["status"] == "done" else None

    shown = until(finished, HUNG)
    assert shown, spawner.ok("task", str(task["id"]), "--json").out
    assert "RESULT adder did add the numbers" in shown["result"]
    assert until(lambda: spawner.spawned("adder").get("status") == "offline", HUNG)
    mark = spawner.spawned("adder")["spawned"]
    assert mark["state"] == "exited" and mark["exit_code"] == 0
    assert "exited 0" in spawner.ok("agents").out


def test_spawn_refuses_bad_input_with_one_line(spawner: Spawner) -> None:
    unknown = spawner("spawn", "x", "--cli", "cursor")
    assert unknown.code == 2 and "'cursor' is not one of" in unknown.err
    bad_restart = spawner("spawn", "x", "--restart", "sometimes", *AGENT_CMD)
    assert bad_restart.code == 2 and "'sometimes' is not one of" in bad_restart.err
    neither = spawner("spawn", "x")
    assert neither.code == 2
    assert neither.err.strip() == (
        "relaybus: error: what to run? give --cli claude|codex|gemini|opencode or -- CMD ARGS..."
    )
    both = spawner("spawn", "x", "--cli", "claude", *AGENT_CMD)
    assert both.code == 2 and "give --cli NAME or a command after --, not both" in both.err
    for done in (unknown, bad_restart, neither, both):
        assert len(done.err.strip().splitlines()) == 1, done


def test_spawn_of_a_cli_missing_on_path_says_so_and_starts_nothing(spawner: Spawner) -> None:
    empty = spawner.root / "empty-bin"
    empty.mkdir()
    missing = spawner("spawn", "x", "--cli", "gemini", PATH=f"{empty}")
    assert missing.code == 2, missing
    assert missing.err.strip() == f"relaybus: error: preflight: gemini is not on PATH ({empty})"
    as_json = spawner("spawn", "x", "--cli", "gemini", "--json", PATH=f"{empty}")
    assert as_json.code == 2 and json.loads(as_json.err)["error"] == "invalid input"
    assert not (spawner.relay_dir / "spawned").exists() or not any(
        (spawner.relay_dir / "spawned").iterdir()
    )


def test_spawn_of_a_preset_prints_what_preflight_found(spawner: Spawner) -> None:
    bin_ = spawner.root / "bin"
    bin_.mkdir()
    fake = bin_ / "gemini"  # a stand-in Gemini CLI: --version, else the echoing agent
    fake.write_text(
        f"#!{sys.executable}\nimport sys, runpy\n"
        "if sys.argv[1:] == ['--version']:\n    print('0.61.0'); sys.exit(0)\n"
        f"sys.argv[1:] = []\nrunpy.run_path({str(spawner.root / 'agent.py')!r})\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    path = f"{bin_}{os.pathsep}{spawner.env['PATH']}"
    done = spawner.ok("spawn", "gem", "--cli", "gemini", "--model", "flash", PATH=path)
    assert done.err.splitlines()[0] == f"found gemini 0.61.0 at {fake}"
    assert done.out.splitlines()[1] == "  command: gemini --model flash"
    agent = spawner.spawned("gem")
    assert until(lambda: spawner.spawned("gem").get("spawned", {}).get("pid"), HUNG), agent
    spawner.pids.add(spawner.spawned("gem")["spawned"]["pid"])
    pid = spawner.spawned("gem")["spawned"]["pid"]
    duplicate = spawner("spawn", "gem", "--cli", "gemini", PATH=path)
    assert duplicate.code == 1, duplicate
    assert duplicate.err.splitlines() == [
        f"found gemini 0.61.0 at {fake}",
        f"relaybus: error: gem runs already (pid {pid}): release it first",
    ]


def test_input_screen_logs_release_of_an_unknown_name_are_not_found(spawner: Spawner) -> None:
    spawner.ok("init")
    for args in (
        ("input", "ghost", "hi"),
        ("screen", "ghost"),
        ("logs", "ghost"),
        ("release", "ghost"),
    ):
        done = spawner(*args)
        assert done.code == 2, done
        assert done.err.startswith("relaybus: error: ") and "ghost" in done.err, done
        assert len(done.err.strip().splitlines()) == 1


def test_a_crash_with_restart_on_failure_is_marked_in_agents(spawner: Spawner) -> None:
    agent = spawner.spawn("phoenix", "--restart", "on-failure", *AGENT_CMD)
    assert agent["restart"] == "on-failure"
    assert until(lambda: "agent ready" in spawner.ok("screen", "phoenix").out, HUNG)
    spawner.ok("input", "phoenix", "quit 3", "--enter")  # relaybus run exits 3 too

    def restarted() -> dict[str, Any]:
        mark: dict[str, Any] = spawner.spawned("phoenix").get("spawned", {})
        return mark if mark.get("restarts") and mark.get("state") == "running" else {}

    mark = until(restarted, HUNG)
    assert mark and mark["exit_code"] == 3 and mark["pid"] != agent["pid"], mark
    spawner.pids.add(mark["pid"])
    row = [line for line in spawner.ok("agents").out.splitlines() if "phoenix" in line]
    assert row and f"pid {mark['pid']}, 1 restart, last exit 3" in row[0]


def test_logs_follow_prints_new_output_until_the_agent_is_released(spawner: Spawner) -> None:
    spawner.spawn("talker", *AGENT_CMD)
    assert until(lambda: "agent ready" in spawner.ok("screen", "talker").out, HUNG)
    follow = subprocess.Popen(
        [RELAYBUS, "logs", "talker", "--follow", "--json"],
        cwd=spawner.root,
        env=spawner.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    printed: list[dict[str, str]] = []

    def read() -> None:
        for line in follow.stdout or ():
            printed.append(json.loads(line))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert until(lambda: any("agent ready" in p["line"] for p in printed), HUNG), printed
        spawner.ok("input", "talker", "after the start", "--enter")
        line = {"name": "talker", "line": "got: after the start"}
        assert until(lambda: line in printed, HUNG), printed
        spawner.ok("release", "talker")
        assert follow.wait(timeout=HUNG) == 0, follow.stderr.read() if follow.stderr else ""
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.communicate()
        reader.join(timeout=HUNG)
