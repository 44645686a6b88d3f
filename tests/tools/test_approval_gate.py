"""The approval gate: ``relaybus hook pre-tool-use`` as a real process on the recorded
Claude Code ``PreToolUse`` input (``payloads/pre-tool-use.json``), against a real relay
(the SQLite file, the warm local relay, a relay server); and the approval mode in the
SessionStart context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from relaybus import Relay
from relaybus.client import warm
from relaybus.identity import session_identity, session_socket
from relaybus.tools.hooks import gate
from relaybus.tools.hooks.host import session_host
from relaybus.tools.session import session_agent
from tests.client.test_warm import wait_gone
from tests.support.live import live_server
from tests.tools.hookutil import HookRun, hook_env, log_lines, payload, run_hook

ME = "shop-dev"
#: What each mode answers for a tool that changes files or runs commands (None: nothing).
VERDICTS = {"open": None, "guarded": "ask", "read-only": "deny"}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Relay.open(dir=tmp_path / "relay") as relay:
        yield relay


@pytest.fixture
def env(tmp_path: Path, runtime: Path) -> dict[str, str]:
    """A Claude Code session's hook environment whose agent is :data:`ME`."""
    return hook_env(tmp_path, runtime, "sess-gate", RELAYBUS_AGENT=ME)


def tool_call(project: Path, tool: str = "Write", **tool_input: Any) -> dict[str, Any]:
    """The recorded PreToolUse input, for ``tool`` (with ``tool_input``) in ``project``."""
    doc = payload("pre-tool-use", cwd=str(project))
    doc["tool_name"] = tool
    if tool_input:
        doc["tool_input"] = tool_input
    return doc


def verdict(run: HookRun) -> str | None:
    """The permission decision the hook printed (None: it printed nothing), after
    checking the output's shape against Claude Code's hook reference."""
    assert run.code == 0, run.err
    if not run.out:
        return None
    output = run.json()["hookSpecificOutput"]
    assert set(output) == {"hookEventName", "permissionDecision", "permissionDecisionReason"}
    assert output["hookEventName"] == "PreToolUse"
    assert isinstance(output["permissionDecisionReason"], str)
    decision = output["permissionDecision"]
    assert decision in ("ask", "deny")  # never "allow": a mode only takes rights away
    return str(decision)


def test_the_recorded_input_is_claude_code_s_pre_tool_use_input() -> None:
    doc = payload("pre-tool-use")

    assert doc["hook_event_name"] == "PreToolUse"
    assert {"session_id", "cwd", "tool_name", "tool_input", "tool_use_id"} <= set(doc)


@pytest.mark.parametrize("mode", list(VERDICTS))
def test_a_write_gets_the_decision_of_the_stored_mode(
    relay: Relay, env: dict[str, str], project: Path, mode: str
) -> None:
    relay.register(ME, pid=None, approval=mode)

    run = run_hook("pre-tool-use", tool_call(project), env)

    assert verdict(run) == VERDICTS[mode]
    if mode == "read-only":
        reason = run.json()["hookSpecificOutput"]["permissionDecisionReason"]
        assert f"agent {ME} is in approval mode read-only" in reason
        assert "Write" in reason and "relaybus approval" in reason


@pytest.mark.parametrize(
    ("tool", "gated"),
    [
        ("Write", True),
        ("Edit", True),
        ("MultiEdit", True),
        ("NotebookEdit", True),
        ("Bash", True),
        ("mcp__github__create_issue", True),
        ("SomeToolNotKnownYet", True),
        ("Read", False),
        ("Grep", False),
        ("Glob", False),
        ("WebFetch", False),
        ("TodoWrite", False),
        ("Task", False),
        ("mcp__relaybus__send", False),
        ("mcp__relaybus__inbox", False),
    ],
)
def test_read_only_denies_what_changes_files_or_runs_commands_and_nothing_else(
    relay: Relay, env: dict[str, str], project: Path, tool: str, gated: bool
) -> None:
    relay.register(ME, pid=None, approval="read-only")

    run = run_hook("pre-tool-use", tool_call(project, tool, file_path="/tmp/x"), env)

    assert verdict(run) == ("deny" if gated else None)
    assert gate.gated(tool) is gated


def test_a_changed_mode_applies_at_the_next_tool_call(
    relay: Relay, env: dict[str, str], project: Path
) -> None:
    me = relay.register(ME, pid=None, approval="read-only")
    call = tool_call(project, "Bash", command="rm -rf build")
    before = verdict(run_hook("pre-tool-use", call, env))

    me.update(approval="guarded")
    guarded = verdict(run_hook("pre-tool-use", call, env))
    me.update(approval="open")
    opened = verdict(run_hook("pre-tool-use", call, env))

    assert (before, guarded, opened) == ("deny", "ask", None)
    assert me.info().epoch == 1


@pytest.mark.parametrize("registered", [False, True], ids=["not registered", "no mode stored"])
def test_without_a_stored_mode_the_environment_s_decides(
    relay: Relay, env: dict[str, str], project: Path, registered: bool
) -> None:
    if registered:
        relay.register(ME, pid=None)  # no approval: NULL, read as open

    run = run_hook("pre-tool-use", tool_call(project), {**env, "RELAYBUS_APPROVAL": "read-only"})
    nothing = run_hook("pre-tool-use", tool_call(project), env)

    assert (verdict(run), verdict(nothing)) == ("deny", None)


def test_a_stored_mode_wins_over_the_environment_s(
    relay: Relay, env: dict[str, str], project: Path
) -> None:
    relay.register(ME, pid=None, approval="open")  # e.g. `relaybus approval open` since

    run = run_hook("pre-tool-use", tool_call(project), {**env, "RELAYBUS_APPROVAL": "read-only"})

    assert verdict(run) is None


def test_without_any_relay_the_profile_s_mode_decides_and_nothing_is_created(
    tmp_path: Path, runtime: Path, project: Path
) -> None:
    config = tmp_path / "config"
    (config / "relaybus").mkdir(parents=True)
    (config / "relaybus" / "profiles.toml").write_text(
        '[careful]\napproval = "guarded"\n', encoding="utf-8"
    )
    env = hook_env(
        tmp_path,
        runtime,
        "sess-none",
        RELAYBUS_PROFILE="careful",
        XDG_CONFIG_HOME=str(config),
    )

    run = run_hook("pre-tool-use", tool_call(project), env)

    assert verdict(run) == "ask"
    assert not (tmp_path / "relay").exists()


def test_a_bad_mode_in_the_environment_asks_and_is_logged(
    tmp_path: Path, env: dict[str, str], project: Path
) -> None:
    run = run_hook("pre-tool-use", tool_call(project), {**env, "RELAYBUS_APPROVAL": "strict"})

    assert verdict(run) == "ask"
    assert "RELAYBUS_APPROVAL" in run.json()["hookSpecificOutput"]["permissionDecisionReason"]
    logged = log_lines(tmp_path)
    assert any("RELAYBUS_APPROVAL is open, guarded or read-only" in line for line in logged)


def test_a_store_that_cannot_be_read_falls_back_on_the_environment_s_mode(
    tmp_path: Path, env: dict[str, str], project: Path
) -> None:
    (tmp_path / "relay").mkdir()
    (tmp_path / "relay" / "relay.db").write_bytes(b"not a database" * 100)

    run = run_hook("pre-tool-use", tool_call(project), {**env, "RELAYBUS_APPROVAL": "guarded"})

    assert verdict(run) == "ask"
    assert any("could not read the approval mode" in line for line in log_lines(tmp_path))


def test_the_gate_reads_the_mode_through_the_warm_relay_when_one_runs(
    tmp_path: Path, env: dict[str, str], project: Path
) -> None:
    folder = tmp_path / "relay"
    with Relay.open(dir=folder) as relay:
        relay.register(ME, pid=None, approval="read-only")
    info = warm.ensure(folder)
    try:
        allowed = {k: v for k, v in env.items() if k != "RELAYBUS_DAEMON"}
        run = run_hook("pre-tool-use", tool_call(project), allowed)
        unknown = run_hook(
            "pre-tool-use", tool_call(project), {**allowed, "RELAYBUS_AGENT": "nobody"}
        )
        log = (folder / "relay.log").read_text(encoding="utf-8")
    finally:
        warm.stop(folder)
        assert info.pid is not None
        wait_gone(info.pid)

    assert (verdict(run), verdict(unknown)) == ("deny", None)
    assert f"GET /v1/agents/{ME} " in log


def test_the_gate_reads_the_mode_from_a_relay_server_with_the_agent_s_token(
    tmp_path: Path, env: dict[str, str], project: Path
) -> None:
    with (
        live_server(tmp_path / "server", admin_token="admin-secret") as srv,
        Relay.open(url=srv.url, token="admin-secret") as admin,
    ):
        token = admin.register(ME, pid=None, approval="guarded").token
        assert token is not None
        remote = {**env, "RELAYBUS_URL": srv.url, "RELAYBUS_TOKEN": token}

        run = run_hook("pre-tool-use", tool_call(project), remote)
        refused = run_hook(
            "pre-tool-use",
            tool_call(project),
            {**remote, "RELAYBUS_TOKEN": "wrong", "RELAYBUS_APPROVAL": "read-only"},
        )

    assert verdict(run) == "ask"
    assert verdict(refused) == "deny"  # 401: the environment's mode


@pytest.mark.parametrize("mode", ["read-only", None])
def test_session_start_tells_the_model_its_approval_mode(
    tmp_path: Path, runtime: Path, project: Path, mode: str | None
) -> None:
    extra = {"RELAYBUS_APPROVAL": mode} if mode else {}
    env = hook_env(tmp_path, runtime, "sess-start", CLAUDE_PROJECT_DIR=str(project), **extra)

    run = run_hook("session-start", payload("session-start", cwd=str(project)), env)

    if mode == "read-only":
        assert "Approval mode: read-only: tool calls that change files" in run.context()
    else:
        assert "Approval mode: open" in run.context()


def test_session_start_served_by_the_session_s_process_tells_the_stored_mode(
    relay: Relay, tmp_path: Path, runtime: Path, project: Path
) -> None:
    env = hook_env(tmp_path, runtime, "sess-hosted", RELAYBUS_APPROVAL="guarded")
    identity = session_identity("claude", cwd=str(project), env=env)
    me = session_agent(relay, identity, register=True)
    path = session_socket(identity.session, env)
    assert me.info().approval == "guarded"  # registered with the session's mode
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(session_host(me, identity, path=path)),
    ):
        run = run_hook("session-start", payload("session-start", cwd=str(project)), env)

    assert "Approval mode: guarded: a person approves" in run.context()
