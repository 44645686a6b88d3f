"""The approval mode through MCP: a session registers with ``RELAYBUS_APPROVAL``, and its
``whoami`` and the other agents' ``agents`` show it (through the bridge and in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mcp.conftest import call, run, stdio_session

pytestmark = [pytest.mark.usefixtures("daemon"), pytest.mark.in_process_too]


def test_a_session_s_approval_mode_shows_in_its_whoami_and_in_others_agents(
    tmp_path: Path,
) -> None:
    seen: dict[str, str] = {}

    async def scenario() -> None:
        async with (
            stdio_session(
                tmp_path, "a", RELAYBUS_AGENT="alice", RELAYBUS_APPROVAL="read-only"
            ) as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob") as bob,
        ):
            seen["alice"] = await call(alice, "whoami")
            seen["bob"] = await call(bob, "whoami")
            seen["agents"] = await call(bob, "agents")

    run(scenario)
    assert "approval mode: read-only" in seen["alice"].splitlines()
    assert "approval mode: open" in seen["bob"].splitlines()
    [line] = [line for line in seen["agents"].splitlines() if line.startswith("alice ")]
    assert line.endswith("approval: read-only")
    [line] = [line for line in seen["agents"].splitlines() if line.startswith("bob ")]
    assert "approval:" not in line  # open is the default: not shown
