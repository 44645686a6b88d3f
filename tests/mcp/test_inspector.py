"""The MCP Inspector's CLI (npm ``@modelcontextprotocol/inspector``, ``--cli``) against a
real ``relaybus mcp``: another SDK (TypeScript) lists and calls the tools.

The package is installed once into ``~/.cache/relaybus-test/inspector-VERSION`` (npm's
own cache beside it). Version 2.12.0 is the one verified here; its ``engines`` field asks
for node 22.19, but its CLI runs on node 20 (the machine's), so npm only warns.
Skipped when node or npm is missing, or the package cannot be installed (offline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from tests.mcp.conftest import HUNG, home_env
from tests.support.npmtool import npm_tool

#: Through the bridge to the warm relay, the path a session takes by default; in-process,
#: the MCP SDK's own server speaks the protocol (tests/mcp/test_stdio.py runs it).
pytestmark = pytest.mark.usefixtures("daemon")

PACKAGE = "@modelcontextprotocol/inspector"
VERSION = "2.12.0"
TOOLS = ["send", "inbox", "wait_for_message", "agents", "task", "whoami"]


@pytest.fixture(scope="module")
def inspector() -> Path:
    """The inspector's executable, installed into the cache if missing."""
    return npm_tool(PACKAGE, VERSION, name="inspector", binary="mcp-inspector")


def relaybus_executable() -> str:
    """The ``relaybus`` console script of this environment (what ``install`` configures)."""
    script = Path(sys.executable).parent / "relaybus"
    if not script.exists():
        pytest.skip(f"no relaybus console script at {script}")
    return str(script)


def inspect(inspector: Path, tmp_path: Path, agent: str, *args: str) -> tuple[int, Any, str]:
    """Run one inspector CLI call against ``relaybus mcp`` acting as ``agent``.

    Returns the exit code, the JSON it printed and its stderr.
    """
    server_env = {
        "RELAYBUS_DIR": str(tmp_path / ".relay"),
        "RELAYBUS_SESSION": f"inspector-{agent}",
        "RELAYBUS_AGENT": agent,
        "RELAYBUS_DAEMON": os.environ["RELAYBUS_DAEMON"],  # the daemon fixture's
        "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"],  # the test's own (conftest.py)
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **home_env(tmp_path),
        "MCP_CATALOG_PATH": str(tmp_path / "inspector-catalog.json"),
    }
    command = [str(inspector), "--cli"]
    for key, value in server_env.items():
        command += ["-e", f"{key}={value}"]
    command += [relaybus_executable(), "mcp", *args]
    done = subprocess.run(
        command, capture_output=True, encoding="utf-8", env=env, cwd=tmp_path, timeout=HUNG
    )
    output = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, output, done.stderr


def texts(result: Any) -> str:
    return "\n".join(block["text"] for block in result["content"])


@pytest.mark.slow
def test_inspector_lists_the_tools_of_relaybus_mcp(inspector: Path, tmp_path: Path) -> None:
    code, listed, err = inspect(inspector, tmp_path, "alice", "--method", "tools/list")

    assert code == 0, err
    assert [tool["name"] for tool in listed["tools"]] == TOOLS
    assert len(json.dumps(listed, indent=2)) < 10_000
    code, resources, err = inspect(inspector, tmp_path, "alice", "--method", "resources/list")
    assert code == 0, err
    assert [r["uri"] for r in resources["resources"]] == ["relaybus://inbox"]


@pytest.mark.slow
def test_inspector_calls_the_tools_of_relaybus_mcp(inspector: Path, tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / ".relay") as relay:
        relay.register("bob", pid=None)

    def call(agent: str, tool: str, *pairs: str) -> tuple[int, Any, str]:
        args = ["--method", "tools/call", "--tool-name", tool]
        for pair in pairs:
            args += ["--tool-arg", pair]
        return inspect(inspector, tmp_path, agent, *args)

    code, sent, err = call("alice", "send", "to=bob", "subject=Hi", "body=hello from the inspector")
    assert code == 0, err
    assert texts(sent) == "Sent #1 to bob."
    code, got, err = call("bob", "inbox")
    assert code == 0, err
    assert texts(got) == "1 new message:\n\n#1 from alice - Hi\nhello from the inspector"

    code, refused, _ = call("alice", "send", "to=nobody", "body=x")
    assert code != 0 and refused["isError"] is True
    assert "target 'nobody' matches no agent" in texts(refused)
    code, refused, _ = call("alice", "task", "action=claim", "task_id=7")
    assert code != 0 and "no task 7" in texts(refused)
