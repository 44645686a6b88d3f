"""``relaybus mcp`` as a standard-library bridge to the warm local relay's ``/mcp``.

The rest of the MCP suite runs through the bridge too (the ``daemon`` fixture); these
tests cover what only the bridge does: its lean imports, the relay it starts, the
session's hooks served by the relay, and a relay that dies under a live session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from relaybus import Relay
from relaybus.client import warm
from relaybus.identity import session_socket
from relaybus.models import AgentStatus
from tests.mcp.conftest import HUNG, RELAYBUS, call, run, session_env, stdio_session
from tests.support.poll import until
from tests.tools.hookutil import HookRun, payload, run_hook

TOOLS = ["send", "inbox", "wait_for_message", "agents", "task", "whoami"]
#: Packages the bridge process must never load: the stack stays in the warm relay.
HEAVY = {
    "mcp",
    "mcp_types",
    "pydantic",
    "pydantic_core",
    "sqlalchemy",
    "httpx",
    "httpx2",
    "anyio",
    "asyncio",
    "starlette",
    "uvicorn",
    "click",
}
#: The relaybus modules the bridge process may load.
LEAN = {
    "relaybus",
    "relaybus.entry",
    "relaybus.__main__",
    "relaybus.identity",
    "relaybus.profiles",
    "relaybus.records",
    "relaybus.repository",
    "relaybus.settings",
    "relaybus.bounds",
    "relaybus.errors",
    "relaybus.client",
    "relaybus.client.warm",
    "relaybus.client.warm_start",  # it starts the relay
    "relaybus.mcp",
    "relaybus.mcp.bridge",
    "relaybus.mcp.bridge_session",
    "relaybus.mcp.listing",
    "relaybus.mcp.streamable",
}


@pytest.fixture
def relay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``relaybus mcp`` bridges (``RELAYBUS_DAEMON=1``) to the warm relay of
    ``tmp_path/.relay``, which is stopped by pid afterwards."""
    monkeypatch.setenv("RELAYBUS_DAEMON", "1")
    folder = tmp_path / ".relay"
    try:
        yield folder
    finally:
        warm.stop(folder)


def message(**fields: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode("utf-8") + b"\n"


def test_the_bridge_answers_tools_list_without_importing_the_mcp_stack(
    tmp_path: Path, relay_dir: Path
) -> None:
    initialize = message(
        id=1,
        method="initialize",
        params={
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    )
    env = {**os.environ, **session_env(tmp_path, "a", RELAYBUS_AGENT="alice")}
    with subprocess.Popen(
        [RELAYBUS[0], "-X", "importtime", *RELAYBUS[1:], "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(initialize)
        proc.stdin.flush()
        assert b'"serverInfo"' in proc.stdout.readline()
        proc.stdin.write(message(method="notifications/initialized"))
        proc.stdin.write(message(id=2, method="tools/list"))
        proc.stdin.flush()
        listed = json.loads(proc.stdout.readline())
        _, err = proc.communicate(timeout=HUNG)  # closes stdin: the client is done
    assert proc.returncode == 0, err.decode("utf-8", "replace")

    assert [tool["name"] for tool in listed["result"]["tools"]] == TOOLS
    imported = {
        line.split("|")[-1].strip()
        for line in err.decode("utf-8", "replace").splitlines()
        if line.startswith("import time:") and not line.endswith("| package")
    }
    assert imported, "no -X importtime output"
    assert {name.split(".")[0] for name in imported} & HEAVY == set()
    assert {name for name in imported if name.startswith("relaybus")} <= LEAN
    # The bridge started the warm relay, detached: it may still be on its way up when
    # the bridge exits, and answers soon after.
    assert until(lambda: warm.probe(relay_dir) is not None, HUNG), (
        "the bridge started no warm relay"
    )


def test_a_real_mcp_client_initializes_and_lists_tools_through_the_bridge(
    tmp_path: Path, relay_dir: Path
) -> None:
    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as client:
            assert client.server_info is not None and client.server_info.name == "relaybus"
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == TOOLS
            assert "on the warm relay of" in await call(client, "whoami")
            assert warm.probe(relay_dir) is not None  # the bridge started it

    run(scenario)
    with Relay.open(dir=relay_dir) as relay:
        assert relay.get_agent("alice").status is AgentStatus.OFFLINE


def test_the_warm_relay_serves_the_bridged_sessions_hooks(tmp_path: Path, relay_dir: Path) -> None:
    env = session_env(tmp_path, "h1", RELAYBUS_AGENT="alice", RELAYBUS_TOOL="claude")
    hook_env = {**os.environ, **env, "XDG_STATE_HOME": str(tmp_path / "state")}
    socket = session_socket("h1", env)

    with Relay.open(dir=relay_dir) as relay:
        bob = relay.register("bob", pid=None)

        async def scenario() -> None:
            async with stdio_session(
                tmp_path, "h1", RELAYBUS_AGENT="alice", RELAYBUS_TOOL="claude"
            ):
                with anyio.fail_after(HUNG):
                    while not socket.exists():  # the relay opens it with the session
                        await anyio.sleep(0.02)

                def hook(event: str) -> HookRun:
                    return run_hook(event, payload(event, cwd=str(tmp_path)), hook_env)

                started = await anyio.to_thread.run_sync(hook, "session-start")
                assert started.code == 0, started.err
                assert "as agent `alice`" in started.context()
                assert relay.get_agent("alice").status is AgentStatus.ONLINE  # a real session

                bob.send("alice", "reached through the relay's hook host")
                prompted = await anyio.to_thread.run_sync(hook, "user-prompt-submit")
                assert prompted.code == 0, prompted.err
                assert "reached through the relay's hook host" in prompted.context()
                alice = relay.get_agent("alice")
                assert alice.status is AgentStatus.BUSY
                assert alice.instance_id == "session-h1" and alice.meta == {"session": "h1"}
                assert relay.agent("alice").unread_count() == 0
                assert not (tmp_path / "state" / "relaybus" / "hooks.log").exists()

        run(scenario)
        assert relay.get_agent("alice").status is AgentStatus.OFFLINE
    assert not socket.exists()  # the session's end closed its hook host


@pytest.mark.slow
def test_a_killed_warm_relay_is_replaced_and_the_session_goes_on(
    tmp_path: Path, relay_dir: Path
) -> None:
    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice:
            assert "You are alice" in await call(alice, "whoami")
            first = warm.probe(relay_dir)
            assert first is not None and first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            assert "You are alice" in await call(alice, "whoami")  # a new relay, a new session
            again = warm.probe(relay_dir)
            assert again is not None and again.pid != first.pid
            seen = await call(alice, "agents")
            assert f"alice (online) - tags: {tmp_path.name} - caps: chat [you]" in seen

    run(scenario)
    with Relay.open(dir=relay_dir) as relay:
        assert relay.get_agent("alice").status is AgentStatus.OFFLINE


@pytest.mark.slow
def test_the_listing_the_bridge_answers_from_is_what_the_relay_answers() -> None:
    """``initialize`` and ``tools/list`` are answered by the bridge itself while the
    relay starts (src/relaybus/mcp/listing.json): the file must be the relay's own."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "mcp_listing.py"
    done = subprocess.run(
        [RELAYBUS[0], str(script), "--check"],
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert done.returncode == 0, done.stderr
