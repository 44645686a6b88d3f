"""The Claude Code hook commands, run as real subprocesses on recorded hook
inputs in Claude Code's format, against a real SQLite relay.

Most tests serve the session's hook socket from this test process (the same
:func:`session_host` that ``relaybus mcp`` runs), so each hook process takes
the fast path; the ``inline`` tests cover the path without it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from relaybus import AgentHandle, Relay
from relaybus.identity import HOSTNAME, session_identity, session_socket
from relaybus.models import AgentStatus, Via
from relaybus.tools.hooks import ledger, turns
from relaybus.tools.hooks.host import session_host
from relaybus.tools.hooks.logic import MAX_MESSAGES
from relaybus.tools.session import session_agent
from tests.support.poll import until
from tests.tools.hookutil import hook_env, log_lines, payload, run_hook

#: Seconds to wait for a background registration: far above a real one.
HUNG = 30.0


@dataclass
class Session:
    """A Claude Code session as the hooks see it: its agent, its hook
    environment, and the relay (for checks and for the other agents)."""

    relay: Relay
    me: AgentHandle
    env: dict[str, str]
    project: Path

    def input(self, name: str, **changes: object) -> dict[str, object]:
        return payload(name, cwd=str(self.project), **changes)

    def bob(self) -> AgentHandle:
        return self.relay.register("bob", pid=None)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Relay.open(dir=tmp_path / "relay") as relay:
        yield relay


@pytest.fixture
def hosted(tmp_path: Path, runtime: Path, project: Path, relay: Relay) -> Iterator[Session]:
    """A session whose hook socket is served (as by its ``relaybus mcp``)."""
    env = hook_env(tmp_path, runtime, "sess-hosted", RELAYBUS_LABEL="shop dev")
    identity = session_identity("claude", cwd=str(project), env=env)
    me = session_agent(relay, identity, register=True)
    path = session_socket(identity.session, env)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(session_host(me, identity, path=path)) as served,
    ):
        assert served == path
        yield Session(relay, me, env, project)


@pytest.fixture
def bare(tmp_path: Path, runtime: Path, project: Path, relay: Relay) -> Session:
    """A session with no ``relaybus mcp`` process: hooks work in-process."""
    env = hook_env(tmp_path, runtime, "sess-bare", CLAUDE_PROJECT_DIR=str(project))
    identity = session_identity("claude", cwd=str(project), env=env)
    me = session_agent(relay, identity, register=True)
    return Session(relay, me, env, project)


def test_session_start_adds_the_agent_identity_and_usage_as_context(hosted: Session) -> None:
    run = run_hook("session-start", hosted.input("session-start"), hosted.env)

    assert run.code == 0, run.err
    out = run.json()["hookSpecificOutput"]
    assert out["hookEventName"] == "SessionStart"
    text = out["additionalContext"]
    assert f"`{hosted.me.id}` (shop dev)" in text
    assert "no ack loops" in text and "reply_to" in text
    assert hosted.me.info().status is AgentStatus.ONLINE


def test_prompt_hook_adds_new_messages_once(hosted: Session) -> None:
    bob = hosted.bob()
    first = bob.send(hosted.me.id, "I'm refactoring auth, stay out of src/auth", subject="auth")
    claim = bob.send(hosted.me.id, "who can review PR 42?", claimable=True)

    run = run_hook("user-prompt-submit", hosted.input("user-prompt-submit"), hosted.env)

    assert run.code == 0, run.err
    assert run.json()["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    text = run.context()
    assert f"#{first.id} from bob" in text and "Subject: auth" in text
    assert "stay out of src/auth" in text
    assert f"task {claim.task_id}" in text
    assert text.index(f"#{first.id}") < text.index(f"#{claim.id}")  # oldest first
    assert hosted.me.unread_count() == 0
    assert hosted.me.info().status is AgentStatus.BUSY

    again = run_hook("user-prompt-submit", hosted.input("user-prompt-submit"), hosted.env)
    assert again.code == 0 and again.out == ""  # each message is shown once


def test_post_tool_use_hook_adds_messages_that_arrived_during_the_turn(hosted: Session) -> None:
    doc = hosted.input("post-tool-use")
    quiet = run_hook("post-tool-use", doc, hosted.env)
    assert quiet.code == 0 and quiet.out == ""

    hosted.bob().send(hosted.me.id, "prod 5xx alert on /checkout", priority="high")
    run = run_hook("post-tool-use", doc, hosted.env)

    assert run.json()["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    assert "prod 5xx alert on /checkout" in run.context()
    assert "priority high" in run.context()


def test_hooks_show_at_most_a_page_and_count_the_rest(hosted: Session) -> None:
    bob = hosted.bob()
    for n in range(MAX_MESSAGES + 3):
        bob.send(hosted.me.id, f"note {n}")

    first = run_hook("post-tool-use", hosted.input("post-tool-use"), hosted.env).context()
    second = run_hook("post-tool-use", hosted.input("post-tool-use"), hosted.env).context()

    assert "note 0" in first and f"note {MAX_MESSAGES - 1}" in first
    assert "3 more unread" in first
    assert f"note {MAX_MESSAGES}" in second and f"note {MAX_MESSAGES + 2}" in second
    assert "note 0" not in second


def test_stop_hook_blocks_with_unseen_messages_as_the_reason(hosted: Session) -> None:
    hosted.bob().send(hosted.me.id, "can you also bump the version?")

    run = run_hook("stop", hosted.input("stop"), hosted.env)

    out = run.json()
    assert out["decision"] == "block"
    assert "can you also bump the version?" in out["reason"]
    again = run_hook("stop", hosted.input("stop"), hosted.env)
    assert again.code == 0 and again.out == ""  # nothing new: let it stop
    assert hosted.me.info().status is AgentStatus.IDLE


def test_stop_hook_lets_the_session_stop_when_it_is_already_continuing(hosted: Session) -> None:
    hosted.bob().send(hosted.me.id, "one more thing")

    run = run_hook("stop", hosted.input("stop-active"), hosted.env)

    assert run.code == 0 and run.out == ""
    assert hosted.me.unread_count() == 1  # kept for the next prompt


def test_session_end_marks_the_agent_offline(hosted: Session) -> None:
    run = run_hook("session-end", hosted.input("session-end"), hosted.env)

    assert run.code == 0 and run.out == ""
    assert hosted.me.info().status is AgentStatus.OFFLINE


def test_a_hook_the_host_answers_lands_its_presence_after_earlier_background_work(
    hosted: Session,
) -> None:
    """Stop's background process (an earlier hook that answered without the host)
    still runs when SessionEnd reaches the host: the host marks the agent offline
    at once, and the hook queues the same change behind the pending turn, so the
    idle that turn lands does not outlive the session."""
    path = session_socket(hosted.env["RELAYBUS_SESSION"], hosted.env)
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as earlier:  # the pending process
        turn = turns.take_turn(path.parent, path.stem)
        turns.claim_turn(path.parent, turn, earlier.pid)

        run = run_hook("session-end", hosted.input("session-end"), hosted.env)
        assert run.code == 0
        assert hosted.me.info().status is AgentStatus.OFFLINE  # the host, at once

        hosted.me.heartbeat(status="idle")  # what the pending Stop lands
        turns.end_turn(path.parent, turn)
        assert earlier.stdin is not None
        earlier.stdin.close()
    assert turns_ended(path)  # the queued SessionEnd has taken its turn
    assert hosted.me.info().status is AgentStatus.OFFLINE


def test_session_end_after_clear_keeps_the_agent_online(hosted: Session) -> None:
    run = run_hook("session-end", hosted.input("session-end-clear"), hosted.env)

    assert run.code == 0 and run.out == ""
    assert hosted.me.info().status is AgentStatus.ONLINE


def test_inline_hook_delivers_mail_without_the_session_process(bare: Session) -> None:
    bare.bob().send(bare.me.id, "merge freeze at 17:00")

    run = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), bare.env, inline=True)

    assert "merge freeze at 17:00" in run.context()
    assert bare.me.unread_count() == 0


def test_hook_without_the_session_process_prints_the_mail_itself_once(bare: Session) -> None:
    sent = bare.bob().send(bare.me.id, "merge freeze at 17:00")
    since = bare.relay.last_event_id()

    run = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), bare.env)

    assert "merge freeze at 17:00" in run.context()  # read by the hook itself
    # the background process marks exactly what was printed read, by the hook
    assert wait_for(bare.relay, since, "message.read", bare.me.id)
    assert bare.me.unread_count() == 0
    [receipt] = bare.relay.deliveries(sent.id)
    assert (receipt.state.value, receipt.via) == ("read", Via.HOOK)
    assert wait_for(bare.relay, since, "agent.updated", bare.me.id)
    assert bare.me.info().status is AgentStatus.BUSY
    again = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), bare.env)
    assert (again.code, again.out) == (0, "")


def test_mail_waiting_at_the_start_is_printed_by_session_start_once_without_relaybus_mcp(
    bare: Session,
) -> None:
    first = bare.bob().send(bare.me.id, "waiting for you at the start", subject="hello")
    second = bare.bob().send(bare.me.id, "and a task", claimable=True)
    since = bare.relay.last_event_id()

    with held_write_lock(bare.relay):  # the background cannot mark anything read yet
        start = run_hook("session-start", bare.input("session-start"), bare.env)
        prompt = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), bare.env)
        tool = run_hook("post-tool-use", bare.input("post-tool-use"), bare.env)
        [record] = printed_files(bare)
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert bare.me.unread_count() == 2

    text = start.context()
    assert f"`{bare.me.id}`" in text  # the identity, then the mail
    assert text.index(f"`{bare.me.id}`") < text.index(f"#{first.id} from bob")
    assert "Subject: hello" in text and "waiting for you at the start" in text
    assert f"task {second.task_id} (open: claim it with the task tool)" in text
    # printed, not yet marked read: no later hook shows it again
    assert (prompt.code, prompt.out) == (0, "")
    assert (tool.code, tool.out) == (0, "")
    assert wait_for(bare.relay, since, "message.read", bare.me.id)
    assert bare.me.unread_count() == 0
    for sent in (first, second):
        [receipt] = bare.relay.deliveries(sent.id)
        assert (receipt.state.value, receipt.via) == ("read", Via.HOOK)
    reads = bare.relay.events(since=since)
    assert len([e for e in reads if e.kind == "message.read"]) == 1  # marked once
    # the prompt's background (busy) comes after it forgot the printed record
    assert wait_for(bare.relay, since, "agent.updated", bare.me.id)
    assert printed_files(bare) == []
    later = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), bare.env)
    assert (later.code, later.out) == (0, "")


def test_mail_printed_before_relaybus_mcp_answered_is_marked_read_by_it_and_not_shown_again(
    hosted: Session,
) -> None:
    shown = hosted.bob().send(hosted.me.id, "printed by an earlier hook itself")
    fresh = hosted.bob().send(hosted.me.id, "not printed yet")
    path = session_socket(hosted.env["RELAYBUS_SESSION"], hosted.env)
    ledger.record_printed(path.parent, path.stem, [shown.id])

    run = run_hook("user-prompt-submit", hosted.input("user-prompt-submit"), hosted.env)

    text = run.context()
    assert "not printed yet" in text and "printed by an earlier hook itself" not in text
    assert hosted.me.unread_count() == 0
    [receipt] = hosted.relay.deliveries(shown.id)
    assert (receipt.state.value, receipt.via) == ("read", Via.HOOK)
    assert hosted.relay.deliveries(fresh.id)[0].via == Via.HOOK
    assert ledger.printed(path.parent, path.stem) == (set(), [])


def test_hooks_without_a_store_print_no_mail_and_create_none(
    tmp_path: Path, runtime: Path, project: Path
) -> None:
    env = hook_env(tmp_path, runtime, "sess-nostore", CLAUDE_PROJECT_DIR=str(project))

    tool = run_hook("post-tool-use", payload("post-tool-use", cwd=str(project)), env)

    assert (tool.code, tool.out) == (0, "")
    assert not (tmp_path / "relay").exists()


@contextmanager
def held_write_lock(relay: Relay) -> Iterator[None]:
    """Hold the store's write lock (as a long write would): readers go on,
    writers wait (SQLite's busy timeout, far longer than this block)."""
    conn = sqlite3.connect(relay.store.url.database or "", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def turns_ended(socket: Path) -> bool:
    """Wait (bounded) until the session of ``socket`` has no turn left: its hooks'
    background processes have done their work (:mod:`relaybus.tools.hooks.turns`)."""
    return until(lambda: not turns.pending(socket.parent, socket.stem), HUNG)


def printed_files(session: Session) -> list[Path]:
    """The session's records of mail its hooks printed themselves."""
    path = session_socket(session.env["RELAYBUS_SESSION"], session.env)
    return sorted(path.parent.glob(f"{path.stem}.printed-*.json"))


def test_hooks_leave_the_mail_to_relaybus_run_when_it_runs_the_session(bare: Session) -> None:
    sent = bare.bob().send(bare.me.id, "typed in by the runner, not by a hook")
    env = {**bare.env, "RELAYBUS_RUNTIME": "pty"}

    prompt = run_hook("user-prompt-submit", bare.input("user-prompt-submit"), env, inline=True)
    stop = run_hook("stop", bare.input("stop"), env, inline=True)

    assert (prompt.code, prompt.out) == (0, "")
    assert (stop.code, stop.out) == (0, "")  # no block: the runner has the mail
    assert bare.me.unread_count() == 1
    assert bare.relay.deliveries(sent.id)[0].state.value == "queued"
    assert bare.me.info().status is AgentStatus.IDLE  # presence still comes from the hooks


def wait_for(relay: Relay, since: int, kind: str, agent_id: str) -> bool:
    """Wait (bounded) for an event ``kind`` of ``agent_id`` after event ``since``."""
    for _ in range(50):  # each wait returns on the next event or after HUNG
        events = relay.wait_events(HUNG, since=since, kinds=[kind])
        if not events:
            return False
        since = events[-1].id
        if any(e.agent_id == agent_id for e in events):
            return True
    return False


def test_session_start_without_the_session_process_registers_in_the_background(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay
) -> None:
    env = hook_env(tmp_path, runtime, "sess-new", CLAUDE_PROJECT_DIR=str(project))
    expected = session_identity("claude", cwd=str(project), env=env).agent_id
    since = relay.last_event_id()

    run = run_hook("session-start", payload("session-start", cwd=str(project)), env)

    assert f"`{expected}`" in run.context()
    assert wait_for(relay, since, "agent.registered", expected)
    assert relay.get_agent(expected).status is AgentStatus.ONLINE
    assert [a.id for a in relay.agents()] == [expected]  # no second agent


def test_a_short_session_without_the_session_process_ends_offline_in_hook_order(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay
) -> None:
    """A ``claude -p`` runs its four hooks within a second or two, before its
    start's background process has registered the agent (held back here by the
    write lock): each later background process waits for the earlier ones, so
    the session ends offline rather than finding no agent to end."""
    env = hook_env(tmp_path, runtime, "sess-short", CLAUDE_PROJECT_DIR=str(project))
    me = session_identity("claude", cwd=str(project), env=env)

    with held_write_lock(relay):
        for event in ("session-start", "user-prompt-submit", "stop", "session-end"):
            assert run_hook(event, payload(event, cwd=str(project)), env).code == 0

    assert turns_ended(session_socket(me.session, env))  # every background process ran
    assert relay.get_agent(me.agent_id).status is AgentStatus.OFFLINE
    changes = [e.kind for e in relay.events() if e.agent_id == me.agent_id]
    assert changes[0] == "agent.registered"


def start_claude(env: dict[str, str], project: Path) -> subprocess.Popen[str]:
    """A stand-in for Claude Code that runs the SessionStart hook through
    ``sh -c`` and stays alive until its stdin closes (``fake_claude.py``)."""
    script = Path(__file__).with_name("fake_claude.py")
    doc = json.dumps(payload("session-start", cwd=str(project)))
    return subprocess.Popen(
        [sys.executable, str(script), "--hooks-only", doc],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        encoding="utf-8",
        env=env,
        cwd=project,
    )


def printed_context(claude: subprocess.Popen[str]) -> str:
    """What the stand-in's SessionStart hook told the model."""
    assert claude.stdout is not None
    context: str = json.loads(claude.stdout.readline())["hookSpecificOutput"]["additionalContext"]
    return context


def printed_agent(claude: subprocess.Popen[str]) -> str:
    """The agent id the stand-in's SessionStart hook told the model."""
    return printed_context(claude).split("`")[1]


def test_background_registration_registers_the_printed_identity_with_claudes_pid(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay
) -> None:
    """No RELAYBUS_SESSION: the identity comes from the process tree. The
    background registration outlives the hook (its parent is then gone) and
    must still register the agent the hook printed, with Claude Code's pid."""
    env = hook_env(tmp_path, runtime, "unused", CLAUDE_PROJECT_DIR=str(project))
    del env["RELAYBUS_SESSION"]
    since = relay.last_event_id()

    with start_claude(env, project) as claude:
        printed = printed_agent(claude)
        registered = wait_for(relay, since, "agent.registered", printed)
        agent = relay.get_agent(printed) if registered else None
        assert claude.stdin is not None
        claude.stdin.close()  # the stand-in exits: the session's tool is gone
        assert claude.wait(HUNG) == 0

    assert agent is not None and agent.status is AgentStatus.ONLINE
    assert agent.pid == claude.pid
    assert [a.id for a in relay.agents()] == [printed]  # no second agent
    assert relay.get_agent(printed).status is AgentStatus.OFFLINE  # ended with its tool


def test_background_registration_marks_read_only_the_mail_session_start_printed(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay
) -> None:
    env = hook_env(tmp_path, runtime, "unused", RELAYBUS_AGENT="shop-dev")
    del env["RELAYBUS_SESSION"]
    relay.register("shop-dev", pid=None)
    sent = relay.register("bob", pid=None).send("shop-dev", "waiting for you at the start")
    since = relay.last_event_id()

    with start_claude(env, project) as claude:
        context = printed_context(claude)
        registered = wait_for(relay, since, "agent.registered", "shop-dev")
        marked = wait_for(relay, since, "message.read", "shop-dev")
        assert claude.stdin is not None
        claude.stdin.close()
        assert claude.wait(HUNG) == 0

    assert "as agent `shop-dev`" in context and "waiting for you at the start" in context
    assert registered and marked
    [receipt] = relay.deliveries(sent.id)
    assert (receipt.state.value, receipt.via) == ("read", Via.HOOK)
    assert relay.get_agent("shop-dev").pid == claude.pid


def test_a_task_that_is_done_is_not_offered_for_claiming(hosted: Session) -> None:
    bob = hosted.bob()
    other = hosted.relay.register("carol", pid=None)
    # Offered to the session's agent and carol (only a recipient claims); carol takes it.
    done = bob.send("broadcast", "rotate the keys", claimable=True)
    assert done.task_id is not None
    other.claim(done.task_id)
    other.update_task(done.task_id, status="done", result="rotated")
    still_open = bob.send(hosted.me.id, "review PR 7", claimable=True)

    text = run_hook("user-prompt-submit", hosted.input("user-prompt-submit"), hosted.env).context()

    assert f"task {done.task_id} (done: nothing to claim)" in text
    assert f"task {still_open.task_id} (open: claim it with the task tool)" in text


def test_mail_a_hook_gave_up_on_before_printing_stays_unread(hosted: Session) -> None:
    hosted.bob().send(hosted.me.id, "do not lose me")
    path = session_socket(hosted.env["RELAYBUS_SESSION"], hosted.env)
    request = {"event": "UserPromptSubmit", "input": hosted.input("user-prompt-submit")}

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(HUNG)
        conn.connect(str(path))
        conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
        reply = json.loads(conn.makefile("rb").readline())
        # closes without the ack, as a hook out of time does

    assert "do not lose me" in reply["output"]["hookSpecificOutput"]["additionalContext"]
    assert reply["shown"] == 1
    run = run_hook("user-prompt-submit", hosted.input("user-prompt-submit"), hosted.env)
    assert "do not lose me" in run.context()
    assert hosted.me.unread_count() == 0


def test_hook_on_a_broken_relay_prints_nothing_and_logs_the_problem(
    tmp_path: Path, runtime: Path, project: Path
) -> None:
    not_a_folder = tmp_path / "relay"
    not_a_folder.write_text("not a relay", encoding="utf-8")
    env = hook_env(tmp_path, runtime, "sess-broken")

    run = run_hook("stop", payload("stop", cwd=str(project)), env, inline=True)

    assert run.code == 0 and run.out == "" and run.err == ""
    [line] = log_lines(tmp_path)
    assert "Stop:" in line and "no answer from the session" not in line


def test_hook_with_malformed_input_prints_nothing_and_logs_it(hosted: Session) -> None:
    run = run_hook("user-prompt-submit", "{not json", hosted.env)

    assert run.code == 0 and run.out == ""
    state = Path(hosted.env["XDG_STATE_HOME"])
    assert any("JSONDecodeError" in line for line in log_lines(state.parent))


def test_unknown_hook_event_is_a_usage_error(hosted: Session) -> None:
    run = run_hook("pre-compact", "{}", hosted.env)

    assert run.code == 2
    assert "usage: relaybus hook" in run.err


def test_hooks_and_mcp_server_of_one_claude_process_are_one_agent(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay
) -> None:
    """No RELAYBUS_SESSION: the session key comes from the process tree alone."""
    env = hook_env(tmp_path, runtime, "unused")
    del env["RELAYBUS_SESSION"]
    env["RELAYBUS_TOOL"] = "claude"
    script = Path(__file__).with_name("fake_claude.py")
    doc = json.dumps(payload("session-start", cwd=str(project)))

    proc = subprocess.run(
        [sys.executable, str(script), doc],
        capture_output=True,
        encoding="utf-8",
        env=env,
        cwd=project,
        timeout=HUNG * 2,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [agent] = [a for a in relay.agents() if a.id in out["whoami"]]
    context = json.loads(out["hook"])["hookSpecificOutput"]["additionalContext"]
    assert f"`{agent.id}`" in context
    assert agent.id.startswith(f"{HOSTNAME.split('.')[0]}-claude-shop-")
    assert log_lines(tmp_path) == []  # the hook was answered by the session's relaybus mcp


@pytest.mark.parametrize("mode", ["--background", "--inline"])
def test_session_end_of_a_session_that_never_started_registers_nothing(
    tmp_path: Path, runtime: Path, project: Path, relay: Relay, mode: str
) -> None:
    """``claude mcp list`` runs the SessionEnd hook alone, without SessionStart;
    without ``relaybus mcp`` the hook hands it to ``--background`` (run here
    directly, to wait for it)."""
    env = hook_env(tmp_path, runtime, "sess-check", CLAUDE_PROJECT_DIR=str(project))
    doc = payload("session-end", cwd=str(project))
    me = session_identity("claude", cwd=str(project), env=env)
    request = {"identity": me.to_json(), "input": doc} if mode == "--background" else doc

    done = subprocess.run(
        [sys.executable, "-m", "relaybus", "hook", "session-end", mode],
        input=json.dumps(request),
        capture_output=True,
        encoding="utf-8",
        env=env,
        timeout=HUNG,
        check=False,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert relay.agents() == []
    assert log_lines(tmp_path) == []
