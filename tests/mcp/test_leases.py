"""An MCP session renews the leases its agent holds while the session's ``relaybus mcp``
process lives, and stops when it is killed: in-process, and through the bridge (where
the warm relay holds the session, open while the bridge's request stream is).

Each holds a 2 s lease for 30 s of wall time: marked slow, so that they start first and
overlap the rest of the suite."""

from __future__ import annotations

import select
import subprocess
from pathlib import Path

import pytest

from relaybus import Relay
from tests.mcp.conftest import HUNG, RELAYBUS, session_env
from tests.mcp.test_stdio import INITIALIZE, INITIALIZED
from tests.runtime.test_leases import held_throughout, kill, lapses_within_one_lease

pytestmark = pytest.mark.usefixtures("daemon")

#: The lease claimed, seconds (tests.runtime.test_leases holds it for HOLD seconds).
LEASE = 2.0
HOLD = 30.0


@pytest.mark.in_process_too
@pytest.mark.slow
def test_a_session_keeps_a_short_lease_while_it_lives_and_loses_it_when_killed(
    tmp_path: Path,
) -> None:
    with Relay.open(dir=tmp_path / ".relay") as relay:
        relay.register("bob")
        relay.register("carol", capabilities=["long"])
        cursor = relay.last_event_id()
        env = session_env(tmp_path, "a", RELAYBUS_AGENT="alice", RELAYBUS_CAPS="long")
        with open(tmp_path / "a.log", "w", encoding="utf-8") as errlog:
            proc = subprocess.Popen(
                [*RELAYBUS, "mcp"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errlog,
                env=env,
                cwd=tmp_path,
            )
            try:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(INITIALIZE)
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], HUNG)
                assert ready, "no answer to initialize"
                assert b'"serverInfo"' in proc.stdout.readline()
                proc.stdin.write(INITIALIZED)  # registers after REGISTER_AFTER seconds
                proc.stdin.flush()
                registered = relay.wait_events(HUNG, since=cursor, kinds=["agent.registered"])
                assert [e.agent_id for e in registered] == ["alice"]
                sent = relay.agent("bob").send("cap:long", "long job", claimable=True)
                assert sent.task_id is not None
                # Claimed as the session's agent from elsewhere (its shell's `relaybus claim`).
                relay.agent("alice").claim(sent.task_id, lease=LEASE)
                held_throughout(relay, sent.task_id, "alice", HOLD)
                killed_at = kill(proc.pid)
                proc.wait(HUNG)
                lapses_within_one_lease(relay, sent.task_id, killed_at)
            finally:
                proc.kill()
                proc.wait(HUNG)
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.close()
                proc.stdout.close()
