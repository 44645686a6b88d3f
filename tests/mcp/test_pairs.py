"""Pair sessions through ``relaybus mcp``'s task tool (pair_invite, pair_accept,
pair_send, pair_status, pair_hangup): real processes, real MCP clients."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relaybus import Relay
from tests.mcp.conftest import call, fail, run, stdio_session

pytestmark = pytest.mark.usefixtures("daemon")


def test_two_sessions_pair_through_the_task_tool(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob") as bob,
        ):
            await call(bob, "whoami")  # bob is registered before alice invites him
            invited = await call(
                alice, "task", action="pair_invite", target="bob", objective="fix CI"
            )
            match = re.match(r"pair (\d+) pending: you invited bob - fix CI", invited)
            assert match, invited
            pair_id = int(match.group(1))
            invite = await call(bob, "inbox")
            assert f"pair {pair_id}" in invite and "fix CI" in invite
            busy = await fail(bob, "task", action="pair_invite", target="alice", objective="x")
            assert f"pair {pair_id}" in busy
            refused = await fail(alice, "task", action="pair_accept", pair_id=pair_id)
            assert "only bob" in refused
            accepted = await call(bob, "task", action="pair_accept", pair_id=pair_id)
            assert accepted == f"pair {pair_id} active: alice invited you - fix CI"
            sent = await call(alice, "task", action="pair_send", pair_id=pair_id, body="hi bob")
            assert "bob" in sent
            heard = await call(bob, "inbox")
            assert f"(pair {pair_id}," in heard and "hi bob" in heard
            status = await call(bob, "task", action="pair_status")
            assert status == f"pair {pair_id} active: alice invited you - fix CI"
            ended = await call(bob, "task", action="pair_hangup", pair_id=pair_id)
            assert ended.startswith(f"pair {pair_id} ended (hangup)")
            missing = await fail(alice, "task", action="pair_send", pair_id=pair_id)
            assert "`body` is required" in missing

    run(scenario)
    with Relay.open(dir=tmp_path / ".relay") as relay:
        assert [p.status.value for p in relay.pairs()] == ["ended"]
