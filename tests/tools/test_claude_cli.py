"""The real Claude Code CLI, headless (``claude -p``), against a real relay.

``relaybus install claude`` in a temporary home sets up the MCP server and
the hooks as a user would; the model is a stand-in for Anthropic's Messages
API on 127.0.0.1 (:mod:`fake_anthropic`) that records each request and
answers with text or with a call of the relaybus ``send`` tool. So this
covers what only Claude Code itself decides: when it runs each hook, whether
it waits for them, how it starts and stops ``relaybus mcp``, what of the
hooks' output reaches the model.

The CLI is found through ``RELAYBUS_TEST_CLAUDE``, then ``PATH``, then the
project-local npm prefix ``.ci/run`` installs into; missing, the tests skip,
except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.client import warm
from relaybus.models import AgentStatus
from tests.support.poll import until
from tests.tools.fake_anthropic import FakeAnthropic, flatten, text, tool_use

ROOT = Path(__file__).resolve().parents[2]
#: Where ``.ci/run`` installs the CLI (``npm install --prefix``).
LOCAL_CLI = ROOT / ".ci" / "node_modules-root" / "node_modules" / ".bin" / "claude"
#: The installed relaybus command (what install writes into Claude Code's config).
RELAYBUS = str(Path(sys.executable).parent / "relaybus")
#: Generous: one whole ``claude -p`` run on a loaded machine.
HUNG = 240.0
#: Environment that keeps Claude Code off the network but for the stand-in.
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
ME = "shop-dev"
START_MAIL = "START-MAIL the deploy is frozen until 17:00"
MID_MAIL = "MID-MAIL prod 5xx on /checkout, can you look"
SENT_BODY = "SENT-BY-CLAUDE on it"


def find_claude() -> str | None:
    """The Claude Code CLI to drive, or None."""
    given = os.environ.get("RELAYBUS_TEST_CLAUDE")
    if given:
        return given
    return shutil.which("claude") or (str(LOCAL_CLI) if LOCAL_CLI.exists() else None)


@pytest.fixture(scope="module")
def claude() -> str:
    found = find_claude()
    if found is None:
        reason = (
            "the Claude Code CLI is not installed (npm @anthropic-ai/claude-code): set "
            "RELAYBUS_TEST_CLAUDE, put `claude` on PATH, or run .ci/run once"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@dataclass
class Home:
    """A temporary home with relaybus installed into Claude Code for ``project``."""

    home: Path
    project: Path
    relay_dir: Path
    env: dict[str, str]

    def run(self, argv: list[str], **extra: str) -> tuple[int, str]:
        """Run ``argv`` in the project to completion: (its pid, its stdout)."""
        with subprocess.Popen(
            argv,
            cwd=self.project,
            env={**self.env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
        ) as proc:
            try:
                out, err = proc.communicate(timeout=HUNG)
            finally:
                proc.kill()
        assert proc.returncode == 0, f"{argv} -> {proc.returncode}\n{out}\n{err}"
        self.settle()
        return proc.pid, out

    def settle(self) -> None:
        """Wait (bounded) until the background processes of the hooks that ran
        without ``relaybus mcp`` have done their work: each removes its turn
        file when done (:mod:`relaybus.tools.hooks.turns`)."""
        folder = Path(self.env["XDG_RUNTIME_DIR"]) / "relaybus"
        settled = until(lambda: not list(folder.glob("*.turn-*")), HUNG)
        assert settled, "a hook's background process hung"


@pytest.fixture(params=["bridge", "in-process"])
def home(request: pytest.FixtureRequest) -> Iterator[Home]:
    """Claude Code's ``relaybus mcp`` both ways: ``bridge`` (to the warm relay, stopped
    by pid afterwards) and ``in-process`` (``RELAYBUS_DAEMON=0``)."""
    # Short: the hook sockets live under it (a socket path has at most 107 bytes).
    root = Path(tempfile.mkdtemp(prefix="rbcc-", dir="/tmp"))
    try:
        home = root / "home"
        project = home / "shop"
        project.mkdir(parents=True)
        (root / "run").mkdir(mode=0o700)
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            QUIET,
            HOME=str(home),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            RELAYBUS_DIR=str(root / "relay"),
            XDG_STATE_HOME=str(root / "state"),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_RUNTIME_DIR=str(root / "run"),
            ANTHROPIC_API_KEY="sk-ant-test-not-a-key",
            RELAYBUS_DAEMON="1" if request.param == "bridge" else "0",
        )
        setup = Home(home, project, root / "relay", env)
        setup.run([RELAYBUS, "install", "claude"])
        yield setup
    finally:
        warm.stop(root / "relay")
        shutil.rmtree(root, ignore_errors=True)


def tool_names(request: dict[str, Any]) -> set[str]:
    return {t.get("name") for t in request.get("tools") or []}


def conversation_script(relay_dir: Path, held: WritesHeld) -> Any:
    """The model. Claude Code does not wait for MCP servers before its first
    request; it offers ``WaitForMcpServers`` instead, which the model calls
    while relaybus's tools are missing. Then it calls relaybus's ``send``
    (and meanwhile bob mails the session), then it answers in text. The
    first request of the conversation lets go of ``held``."""
    mailed: list[bool] = []

    def script(request: dict[str, Any]) -> list[dict[str, Any]]:
        if not request.get("tools"):
            return [text("ok")]  # Claude Code's side calls (titles and such)
        held.release()
        if SENT_BODY in flatten(request["messages"]):
            return [text("Done.")]
        if "mcp__relaybus__send" not in tool_names(request):
            call_id = f"toolu_wait{len(request['messages'])}"
            return [tool_use("WaitForMcpServers", {"servers": ["relaybus"]}, call_id)]
        if not mailed:
            mailed.append(True)
            with Relay.open(dir=relay_dir) as relay:
                relay.agent("bob").send(ME, MID_MAIL)  # arrives while the model thinks
        return [
            text("Sending."),
            tool_use("mcp__relaybus__send", {"to": "bob", "body": SENT_BODY}, "toolu_send"),
        ]

    return script


class WritesHeld:
    """The relay's write lock, held from the start of the session until the
    model's first request (Claude Code sends it after SessionStart and the
    first UserPromptSubmit). Meanwhile ``relaybus mcp`` cannot register the
    session nor answer a hook: as on a machine where it starts slowly, which
    Claude Code does not wait for. Readers go on (WAL)."""

    def __init__(self, relay_dir: Path) -> None:
        self.conn = sqlite3.connect(
            relay_dir / "relay.db", isolation_level=None, check_same_thread=False
        )
        self.lock = threading.Lock()
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        with self.lock:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.conn.close()


def online_but_bob(relay: Relay) -> list[str]:
    return [a.id for a in relay.agents() if a.id != "bob" and a.status is not AgentStatus.OFFLINE]


@pytest.mark.slow
def test_a_claude_code_session_gets_its_mail_once_and_sends_and_leaves_no_agent(
    claude: str, home: Home
) -> None:
    with Relay.open(dir=home.relay_dir) as relay:
        bob = relay.register("bob", pid=None)
        relay.register(ME, pid=None).update(status="offline")
        bob.send(ME, START_MAIL)  # waiting before the session starts
        if home.env["RELAYBUS_DAEMON"] == "1":  # the warm relay runs already
            warm.ensure(home.relay_dir, env=home.env)
        held = WritesHeld(home.relay_dir)  # relaybus mcp answers no hook before the model
        api = FakeAnthropic(conversation_script(home.relay_dir, held))

        try:
            with api.running():
                home.run(
                    [claude, "-p", "check your mail", "--allowedTools", "mcp__relaybus__send"],
                    ANTHROPIC_BASE_URL=api.url,
                    RELAYBUS_AGENT=ME,
                )
        finally:
            held.close()

        requests = api.recorded.conversation()
        assert requests, "Claude Code never asked the model"
        if home.env["RELAYBUS_DAEMON"] == "1":
            # the bridge lists the tools at once: the model has them from its first request
            assert "mcp__relaybus__send" in tool_names(requests[0])
        final = requests[-1]
        [sending] = [n for n, r in enumerate(requests) if SENT_BODY in flatten(r["messages"])][:1]
        # mail waiting at the start reached the model in its first request
        # (SessionStart's or the first prompt's output, before any tool call),
        # and once: no later hook handed it over again
        assert flatten(requests[0]["messages"]).count(START_MAIL) == 1
        assert flatten(final["messages"]).count(START_MAIL) == 1
        assert all(flatten(r["messages"]).count(START_MAIL) == 1 for r in requests)
        # mail that arrived mid-session (while the model chose to send) reached
        # the next request, once
        assert MID_MAIL not in flatten(requests[sending - 1]["messages"])
        assert flatten(requests[sending]["messages"]).count(MID_MAIL) == 1
        assert flatten(final["messages"]).count(MID_MAIL) == 1
        # the model's send reached bob
        assert [m.body for m in bob.inbox() if m.sender == ME] == [SENT_BODY]
        assert relay.agent(ME).unread_count() == 0
        # the session ended: no agent of it is online, none was left behind
        assert {a.id for a in relay.agents()} == {"bob", ME}
        assert online_but_bob(relay) == []

        # Each check starts relaybus mcp and asks it. Claude Code first looks for its API:
        # pointed at the stand-in, it does not spend ~20 s resolving api.anthropic.com.
        with FakeAnthropic().running() as checked:
            for check in (["mcp", "list"], ["mcp", "get", "relaybus"]):
                out = home.run([claude, *check], ANTHROPIC_BASE_URL=checked.url)[1]
                assert "relaybus" in out and "Connected" in out, out
        assert {a.id for a in relay.agents()} == {"bob", ME}
        assert online_but_bob(relay) == []


@pytest.mark.slow
def test_a_claude_code_session_with_a_derived_id_is_one_agent_that_ends_with_it(
    claude: str, home: Home
) -> None:
    api = FakeAnthropic()  # answers "ok": no tool call
    with api.running():
        pid, _ = home.run([claude, "-p", "hello"], ANTHROPIC_BASE_URL=api.url)

    [request] = api.recorded.conversation()
    if home.env["RELAYBUS_DAEMON"] == "1":  # the bridge lists the tools at once, relay or not
        assert "mcp__relaybus__send" in tool_names(request)
    told = flatten(request["messages"])
    with Relay.open(dir=home.relay_dir) as relay:
        agents = relay.agents()
    assert len(agents) == 1, [(a.id, a.pid, a.status) for a in agents]
    assert f"as agent `{agents[0].id}`" in told  # the id the model was told exists
    assert agents[0].status is AgentStatus.OFFLINE  # and ended with the session
    assert agents[0].pid == pid  # Claude Code's own process


def writes_a_file(target: Path) -> Any:
    """The model: asks Claude Code's ``Write`` tool to create ``target``, then, once it
    has the tool's result, says it is done."""

    def script(request: dict[str, Any]) -> list[dict[str, Any]]:
        if not request.get("tools"):
            return [text("ok")]  # Claude Code's side calls (titles and such)
        if "toolu_write" in flatten(request["messages"]):
            return [text("Done.")]
        arguments = {"file_path": str(target), "content": "release notes draft\n"}
        return [tool_use("Write", arguments, "toolu_write")]

    return script


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["read-only", "guarded", "open"])
def test_the_approval_gate_denies_a_write_in_read_only_and_lets_it_through_in_open(
    claude: str, home: Home, mode: str
) -> None:
    """In ``guarded`` the gate asks; a headless ``claude -p`` has nobody to ask, so
    the write does not happen and the model reads why."""
    target = home.project / "notes.txt"
    api = FakeAnthropic(writes_a_file(target))
    with api.running():
        # Claude Code's own permissions allow the write: only the gate can stop it.
        home.run(
            [claude, "-p", "write the notes", "--allowedTools", "Write"],
            ANTHROPIC_BASE_URL=api.url,
            RELAYBUS_AGENT=ME,
            RELAYBUS_APPROVAL=mode,
        )

    requests = api.recorded.conversation()
    assert f"Approval mode: {mode}" in flatten(requests[0]["messages"])  # SessionStart's
    told = flatten(requests[-1]["messages"])  # the one after the tool call
    assert "toolu_write" in told
    if mode != "open":
        assert not target.exists()
        assert f"agent {ME} is in approval mode {mode}" in told  # the reason, to the model
    else:
        assert target.read_text(encoding="utf-8") == "release notes draft\n"
        assert "approval mode" not in told.replace(f"Approval mode: {mode}", "")
    with Relay.open(dir=home.relay_dir) as relay:
        assert relay.get_agent(ME).approval == mode
