"""``relaybus mcp`` over stdio: real processes, real MCP clients from the ``mcp`` SDK.

Alice's client speaks the handshake era (``initialize``), Bob's the 2026-07-28
per-request era where the server offers it, so both eras are covered by the
same conversation.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from relaybus import Relay
from relaybus.models import AgentStatus
from tests.mcp.conftest import HUNG, RELAYBUS, call, fail, run, session_env, stdio_session, text

#: Each test through the bridge to the warm relay; those about the session's own process
#: (registration, signals, disconnects, waits) in-process too.
pytestmark = pytest.mark.usefixtures("daemon")

INITIALIZE = (
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
    )
    + "\n"
).encode("utf-8")


INITIALIZED = b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n'
TOOLS_LIST = b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}\n'


def relay_of(tmp_path: Path) -> Relay:
    return Relay.open(dir=tmp_path / ".relay")


@pytest.mark.in_process_too
def test_two_sessions_find_each_other_and_talk_in_a_thread(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice,
            stdio_session(tmp_path, "b", mode="auto", RELAYBUS_AGENT="bob") as bob,
        ):
            assert alice.protocol_version == "2025-11-25"
            assert bob.protocol_version == "2026-07-28"
            assert "You are bob" in await call(bob, "whoami")  # registers bob: first use
            assert "You are alice" in await call(alice, "whoami")
            seen = await call(alice, "agents")
            automatic = f"tags: {tmp_path.name} - caps: chat"  # project and chat, no tool
            assert f"alice (online) - {automatic} [you]" in seen
            assert f"bob (online) - {automatic}" in seen

            sent = await call(alice, "send", to="bob", subject="Plan", body="hello bob")
            assert sent == "Sent #1 to bob."
            got = await call(bob, "inbox")
            assert got == "1 new message:\n\n#1 from alice - Plan\nhello bob"
            assert await call(bob, "inbox") == "No new messages."  # read means read

            replied = await call(bob, "send", reply_to=1, body="on it")
            assert replied == "Sent #2 to alice in thread #1."
            got = await call(alice, "wait_for_message", timeout=HUNG)
            assert got == "1 new message:\n\n#2 from bob (thread #1)\non it"

    run(scenario)
    with relay_of(tmp_path) as relay:
        thread = relay.thread(2)
        gone = {a.id for a in relay.agents(status="offline")}
    assert [(m.sender, m.body) for m in thread] == [("alice", "hello bob"), ("bob", "on it")]
    assert gone == {"alice", "bob"}  # both eras: the agent goes offline with its client


def test_a_claimable_message_is_a_task_exactly_one_session_claims(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob", RELAYBUS_TAGS="worker") as bob,
            stdio_session(
                tmp_path, "c", mode="auto", RELAYBUS_AGENT="carol", RELAYBUS_TAGS="worker"
            ) as carol,
        ):
            for worker_client in (bob, carol):  # first use registers a session's agent
                await call(worker_client, "whoami")
            sent = await call(
                alice, "send", to="tag:worker", subject="Review PR 7", body="diff", claimable=True
            )
            assert sent == (
                "Sent #1 to tag:worker (bob, carol). Task #1 is open: one recipient can claim it."
            )
            for worker_client in (bob, carol):
                got = await call(worker_client, "wait_for_message", timeout=HUNG)
                assert "#1 from alice (task #1) - Review PR 7" in got
            assert "task #1 [open] Review PR 7" in await call(bob, "task")

            outcomes: dict[str, CallToolResult] = {}

            async def claim(name: str, client: Client) -> None:
                outcomes[name] = await client.call_tool("task", {"action": "claim", "task_id": 1})

            async with anyio.create_task_group() as tg:  # both claim at once
                tg.start_soon(claim, "bob", bob)
                tg.start_soon(claim, "carol", carol)
            [won] = [name for name, result in outcomes.items() if not result.is_error]
            [lost] = [name for name, result in outcomes.items() if result.is_error]
            assert f"already claimed by {won}" in text(outcomes[lost])
            assert f"task #1 [claimed, held by {won}] Review PR 7" in text(outcomes[won])
            winner, loser = (bob, carol) if won == "bob" else (carol, bob)

            done = await call(
                winner, "task", action="progress", task_id=1, progress=50, note="half"
            )
            assert f"[in_progress, held by {won}, 50%: half]" in done
            assert "[done, by" in await call(
                winner, "task", action="done", task_id=1, result="lgtm"
            )
            refused = await fail(loser, "task", action="done", task_id=1)
            assert "task 1 is done" in refused
            assert await call(alice, "task") == "No open tasks."

    run(scenario)


def test_relay_errors_are_tool_errors_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice:
            assert "target 'nobody' matches no agent" in await fail(
                alice, "send", to="nobody", body="hi"
            )
            assert "no task 999" in await fail(alice, "task", action="claim", task_id=999)
            assert "`task_id` is required to claim" in await fail(alice, "task", action="claim")
            assert "`to` is required: an agent id" in await fail(alice, "send", body="hi")
            assert "no message 42" in await fail(alice, "send", reply_to=42, body="hi")
            assert "from 1 to 300" in await fail(alice, "wait_for_message", timeout=0)
            assert "from 1 to 300" in await fail(alice, "wait_for_message", timeout=301)
            assert "invalid tag" in await fail(alice, "whoami", tags=["no spaces"])
            huge = 2**63  # past what any database holds: once an OverflowError
            bounds = f"between 1 and {2**53 - 1}, not {huge}"
            assert bounds in await fail(alice, "send", reply_to=huge, body="hi")
            assert bounds in await fail(alice, "task", action="claim", task_id=huge)
            assert "between 1 and" in await fail(alice, "task", action="done", task_id=-1)
            assert "You are alice" in await call(alice, "whoami")

    run(scenario)


@pytest.mark.in_process_too
def test_wait_for_message_leaves_the_server_free_and_stops_when_cancelled(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob") as bob,
        ):
            waiting = anyio.CancelScope()
            finished: list[object] = []

            async def wait() -> None:
                with waiting:
                    finished.append(await alice.call_tool("wait_for_message", {"timeout": 300}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                # The same session answers while its wait is pending.
                assert "0 unread messages" in await call(alice, "whoami")
                waiting.cancel()
            assert finished == []
            await call(bob, "send", to="alice", body="after the cancel")
            # The abandoned wait did not swallow the mail.
            assert "after the cancel" in await call(alice, "wait_for_message", timeout=HUNG)

    run(scenario)


@pytest.mark.in_process_too
def test_session_goes_offline_when_its_client_disconnects(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice:
            await call(alice, "whoami")
            with relay_of(tmp_path) as relay:
                assert relay.get_agent("alice").status is AgentStatus.ONLINE

    run(scenario)
    with relay_of(tmp_path) as relay:
        assert relay.get_agent("alice").status is AgentStatus.OFFLINE
        assert [e.kind for e in relay.events(limit=1000)][-1] == "agent.offline"


@pytest.mark.in_process_too
@pytest.mark.slow
def test_sigterm_marks_the_agent_offline_and_exits_cleanly(tmp_path: Path) -> None:
    with relay_of(tmp_path) as relay:
        cursor = relay.last_event_id()
        env = {**session_env(tmp_path, "a", RELAYBUS_AGENT="alice"), "PATH": "/usr/bin:/bin"}
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
                assert b'"serverInfo"' in proc.stdout.readline()  # serving now
                proc.stdin.write(INITIALIZED)  # registers after REGISTER_AFTER seconds
                proc.stdin.flush()
                registered = relay.wait_events(HUNG, since=cursor, kinds=["agent.registered"])
                assert [e.agent_id for e in registered] == ["alice"]
                proc.send_signal(signal.SIGTERM)  # stdin stays open: no EOF to lean on
                code = proc.wait(HUNG)
            finally:
                proc.kill()
                proc.wait(HUNG)
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.close()
                proc.stdout.close()
        assert code == 0, (tmp_path / "a.log").read_text(encoding="utf-8")
        assert relay.get_agent("alice").status is AgentStatus.OFFLINE


@pytest.mark.in_process_too
@pytest.mark.parametrize("stop", [signal.SIGINT, None])
def test_a_connection_check_leaves_no_agent(tmp_path: Path, stop: signal.Signals | None) -> None:
    """What ``claude mcp list`` / ``claude mcp get`` do: start the server,
    initialize, list the tools, then SIGINT it (or close its stdin)."""
    env = {**session_env(tmp_path, "a", RELAYBUS_TOOL="claude"), "PATH": "/usr/bin:/bin"}
    with subprocess.Popen(
        [*RELAYBUS, "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(INITIALIZE)
        proc.stdin.flush()
        assert b'"serverInfo"' in proc.stdout.readline()
        proc.stdin.write(INITIALIZED + TOOLS_LIST)
        proc.stdin.flush()
        assert b'"send"' in proc.stdout.readline()
        if stop is None:
            proc.stdin.close()
        else:
            proc.send_signal(stop)
        assert proc.wait(HUNG) == 0

    with relay_of(tmp_path) as relay:
        assert relay.agents() == []
        assert relay.events(limit=10) == []


@pytest.mark.in_process_too
def test_profile_from_toml_and_env_is_registered(tmp_path: Path) -> None:
    config = tmp_path / "home" / ".config" / "relaybus"
    config.mkdir(parents=True)
    (config / "profiles.toml").write_text(
        '[reviewer]\nlabel = "Code reviewer"\ntags = ["backend"]\ncapabilities = ["review"]\n',
        encoding="utf-8",
    )

    async def scenario() -> None:
        async with stdio_session(
            tmp_path,
            "k1",
            RELAYBUS_TOOL="claude",
            RELAYBUS_PROFILE="reviewer",
            RELAYBUS_CHANNELS="ci, deploys",
        ) as client:
            me = await call(client, "whoami")
            assert '"Code reviewer"' in me
            tags = f"backend, claude, {tmp_path.name}"  # the profile's, then the automatic ones
            assert f"tags: {tags}\ncapabilities: review, chat\nchannels: ci, deploys" in me

    run(scenario)
    with relay_of(tmp_path) as relay:
        [agent] = relay.agents(status="offline")
    # Derived from host, tool, project and session: {host}-claude-{project}-{hash}.
    assert f"-claude-{tmp_path.name[:32]}-" in agent.id
    assert agent.label == "Code reviewer" and agent.channels == ["ci", "deploys"]
    assert agent.instance_id == "session-k1" and agent.meta == {"session": "k1"}
    assert agent.cwd == str(tmp_path)


@pytest.mark.in_process_too
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELAYBUS_PROFILE": "nope"}, "RELAYBUS_PROFILE=nope but there is no "),
        ({"RELAYBUS_AGENT": "no spaces"}, "invalid agent id 'no spaces'"),
        ({"RELAYBUS_URL": "http://127.0.0.1:9"}, "cannot reach relay server"),
    ],
)
def test_a_session_that_cannot_register_says_why_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [*RELAYBUS, "mcp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        env={**session_env(tmp_path, "a"), "PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        timeout=HUNG,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("relaybus: error: ") and message in line, line


def test_a_session_that_joins_late_reads_earlier_broadcasts_through_inbox_history(
    tmp_path: Path,
) -> None:
    with relay_of(tmp_path) as relay:
        relay.register("alice")
        relay.register("bob")
        relay.agent("alice").send("broadcast", "hello all")
        relay.agent("alice").send("broadcast", "lunch?", channel="social")

    async def scenario() -> None:
        async with stdio_session(tmp_path, "c", RELAYBUS_AGENT="carol") as carol:
            earlier = await call(carol, "inbox", history=True)
            social = await call(carol, "inbox", history=True, channel="social")
            assert earlier.startswith("Earlier broadcasts, newest first:")
            assert earlier.index("lunch?") < earlier.index("hello all")
            assert "hello all" not in social and "lunch?" in social
            assert await call(carol, "inbox") == "No new messages."  # never in the inbox

    run(scenario)


def test_whoami_adds_and_removes_single_names_without_a_new_epoch(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with stdio_session(
            tmp_path,
            "a",
            RELAYBUS_AGENT="alice",
            RELAYBUS_TAGS="backend,python",
            RELAYBUS_AUTO_TAGS="0",
        ) as alice:
            await call(alice, "whoami")
            with relay_of(tmp_path) as relay:
                before = relay.get_agent("alice")
            changed = await call(
                alice,
                "whoami",
                tags=["+api", "-python", "+backend"],
                capabilities=["+deploy", "-chat"],
                channels=["+ops", "+alerts"],
            )
            assert "You are alice" in changed
            await call(alice, "whoami", channels=["-alerts"])
            with relay_of(tmp_path) as relay:
                after = relay.get_agent("alice")
            assert after.tags == ["backend", "api"]
            assert after.capabilities == ["deploy"]
            assert after.channels == ["ops"]
            assert after.epoch == before.epoch  # changed in place
            # a plain list still replaces the old one; mixing both forms is refused
            await call(alice, "whoami", tags=["solo"])
            refused = await fail(alice, "whoami", capabilities=["review", "+deploy"])
            assert "give names to replace the list, or +NAME / -NAME" in refused
            with relay_of(tmp_path) as relay:
                last = relay.get_agent("alice")
            assert (last.tags, last.capabilities) == (["solo"], ["deploy"])

    run(scenario)
