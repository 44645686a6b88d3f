"""The real Codex CLI, headless (``codex exec``), against a real relay.

``relaybus install codex`` in a temporary home writes the MCP server and the
hooks as a user would; the model is a stand-in for OpenAI's Responses API on
127.0.0.1 (:mod:`fake_openai`), named in ``config.toml`` as a model provider,
that records each request and answers with text or with a call of the relaybus
``send`` tool. So this covers what only Codex itself decides: which
environment it gives ``relaybus mcp`` (a filtered one: the install forwards
what relaybus reads), when it runs each hook and what of their output reaches
the model.

Codex runs a hook only once the user has trusted it (``/hooks`` in its TUI,
which stores a hash of the hook in ``config.toml``); these runs pass
``--dangerously-bypass-hook-trust`` instead, and approve the relaybus tools
(``default_tools_approval_mode``), which ``codex exec`` would otherwise refuse.
Codex sends its first request once its MCP servers are up or a grace period has
passed (``mcp_optional_startup_grace_ms``): an in-process ``relaybus mcp`` takes
a second or two to start, so the runs give it time.

The CLI comes from npm (``@openai/codex``, pinned): the test skips when npm
cannot install it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.client import warm
from relaybus.models import AgentStatus
from tests.support.npmtool import npm_tool
from tests.support.poll import until
from tests.tools.fake_anthropic import flatten
from tests.tools.fake_openai import FakeOpenAI, function_call, message

#: The Codex CLI version the tests drive (its hooks, its config keys).
CODEX_VERSION = "0.171.0"
RELAYBUS = str(Path(sys.executable).parent / "relaybus")
#: Generous: one whole ``codex exec`` run on a loaded machine.
HUNG = 240.0
START_MAIL = "START-MAIL the deploy is frozen until 17:00"
SENT_BODY = "SENT-BY-CODEX on it"


@pytest.fixture(scope="module")
def codex() -> str:
    return str(npm_tool("@openai/codex", CODEX_VERSION, name="codex", binary="codex"))


@dataclass
class Home:
    """A temporary home with relaybus installed into Codex, a project ``shop``
    (a git repository), and the stand-in model named in Codex's config."""

    home: Path
    project: Path
    relay_dir: Path
    env: dict[str, str]

    def use_model(self, api: FakeOpenAI) -> None:
        """Point Codex at ``api`` (root keys first: TOML puts them before tables)."""
        config = self.home / ".codex" / "config.toml"
        provider = (
            f'\n[model_providers.stand-in]\nname = "stand-in"\nbase_url = "{api.url}"\n'
            'wire_api = "responses"\nenv_key = "STAND_IN_KEY"\n'
        )
        config.write_text(
            'model = "stand-in-model"\nmodel_provider = "stand-in"\n'
            + config.read_text(encoding="utf-8")
            + provider,
            encoding="utf-8",
        )

    def exec(self, codex: str, prompt: str, *options: str) -> str:
        """``codex exec [OPTIONS] PROMPT`` in the project to completion: its stdout."""
        argv = [
            codex,
            "exec",
            *options,
            "--dangerously-bypass-hook-trust",
            "-c",
            'mcp_servers.relaybus.default_tools_approval_mode="approve"',
            "-c",
            "mcp_optional_startup_grace_ms=30000",
            prompt,
        ]
        done = subprocess.run(
            argv,
            cwd=self.project,
            env=self.env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
            timeout=HUNG,
            check=False,
        )
        assert done.returncode == 0, f"{argv} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        folder = Path(self.env["XDG_RUNTIME_DIR"]) / "relaybus"
        # the hooks' background processes (registration, presence, marking read)
        assert until(lambda: not list(folder.glob("*.turn-*")), HUNG), "a hook's process hung"
        return done.stdout


@pytest.fixture(params=["bridge", "in-process"])
def home(request: pytest.FixtureRequest) -> Iterator[Home]:
    """Codex's ``relaybus mcp`` both ways: ``bridge`` (to the warm relay, stopped
    afterwards) and ``in-process`` (``RELAYBUS_DAEMON=0``)."""
    root = Path(tempfile.mkdtemp(prefix="rbcx-", dir="/tmp"))  # short: hook sockets
    try:
        home = root / "home"
        project = home / "shop"
        project.mkdir(parents=True)
        (root / "run").mkdir(mode=0o700)
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            HOME=str(home),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            RELAYBUS_DIR=str(root / "relay"),
            XDG_STATE_HOME=str(root / "state"),
            XDG_CONFIG_HOME=str(home / ".config"),
            # Codex hands relaybus mcp none of these unless the install forwards them
            XDG_RUNTIME_DIR=str(root / "run"),
            RELAYBUS_DAEMON="1" if request.param == "bridge" else "0",
            STAND_IN_KEY="sk-test-not-a-key",
        )
        installed = subprocess.run(
            [RELAYBUS, "install", "codex"], cwd=project, env=env, capture_output=True, check=False
        )
        assert installed.returncode == 0, installed
        yield Home(home, project, root / "relay", env)
    finally:
        warm.stop(root / "relay")
        shutil.rmtree(root, ignore_errors=True)


def calls_send(requests: list[dict[str, Any]]) -> Any:
    """The model: call relaybus's ``send`` (Codex offers MCP tools in a namespace
    ``mcp__relaybus``) once, then answer in text."""

    def script(request: dict[str, Any]) -> list[dict[str, Any]]:
        requests.append(request)
        if SENT_BODY in flatten(request["input"]):
            return [message("Done.")]
        call = function_call("send", {"to": "bob", "body": SENT_BODY}, "call_send")
        return [{**call, "namespace": "mcp__relaybus"}]

    return script


@pytest.mark.slow
def test_a_codex_session_is_one_agent_tagged_with_codex_and_its_project_that_ends_with_it(
    codex: str, home: Home
) -> None:
    api = FakeOpenAI()  # answers "ok"
    home.use_model(api)
    with api.running():
        home.exec(codex, "hello")

    [request] = api.recorded.all()
    told = flatten(request["input"])
    with Relay.open(dir=home.relay_dir) as relay:
        agents = relay.agents()
    assert len(agents) == 1, [(a.id, a.pid, a.status) for a in agents]
    [agent] = agents
    assert agent.id.split("-")[1:3] == ["codex", "shop"]  # {host}-{tool}-{project}-{hash}
    assert (agent.tags, agent.capabilities) == (["codex", "shop"], ["chat"])
    assert f"as agent `{agent.id}`" in told  # SessionStart's context names it
    assert "Tags: codex, shop; capabilities: chat." in told
    assert agent.status is AgentStatus.OFFLINE  # SessionEnd, or relaybus mcp's end


@pytest.mark.slow
def test_a_codex_session_gets_its_mail_once_and_its_send_reaches_the_sender(
    codex: str, home: Home
) -> None:
    with Relay.open(dir=home.relay_dir) as relay:
        bob = relay.register("bob", pid=None)
        requests: list[dict[str, Any]] = []
        api = FakeOpenAI(calls_send(requests))
        home.use_model(api)
        # the session's id is derived from its key: name it to mail it before it starts
        home.env["RELAYBUS_AGENT"] = "shop-codex"
        relay.register("shop-codex", pid=None).update(status="offline")
        bob.send("shop-codex", START_MAIL)
        with api.running():
            home.exec(codex, "check your mail")

        assert len(requests) == 2, [flatten(r["input"])[-300:] for r in requests]
        # the mail waiting at the start reached the model before its first answer, once
        assert all(flatten(r["input"]).count(START_MAIL) == 1 for r in requests)
        # the model's send went out as the session's agent
        assert [(m.sender, m.body) for m in bob.inbox()] == [("shop-codex", SENT_BODY)], [
            i for i in requests[-1]["input"] if i.get("type") == "function_call_output"
        ]
        me = relay.agent("shop-codex")
        assert me.unread_count() == 0
        assert {a.id for a in relay.agents()} == {"bob", "shop-codex"}
        assert me.info().status is AgentStatus.OFFLINE


@pytest.mark.slow
def test_relaybus_whoami_run_by_the_codex_model_names_the_sessions_agent(
    codex: str, home: Home
) -> None:
    def script(request: dict[str, Any]) -> list[dict[str, Any]]:
        outputs = [i for i in request["input"] if i.get("type") == "function_call_output"]
        if not outputs:  # the MCP tool first: the session is registered by then
            return [{**function_call("whoami", {}, "call_1"), "namespace": "mcp__relaybus"}]
        if len(outputs) == 1:
            return [function_call("exec_command", {"cmd": f"{RELAYBUS} whoami --json"}, "call_2")]
        return [message("Done.")]

    api = FakeOpenAI(script)
    home.use_model(api)
    with api.running():
        # outside Codex's sandbox: the relay's files are outside the project here
        home.exec(codex, "who am I on the relay?", "--sandbox", "danger-full-access")

    output = [
        i["output"]
        for i in api.recorded.all()[-1]["input"]
        if i.get("type") == "function_call_output"
    ][-1]
    printed = json.loads(output[output.index("{") : output.rindex("}") + 1])
    with Relay.open(dir=home.relay_dir) as relay:
        [agent] = relay.agents()
    assert printed.get("id") == agent.id, output  # the session's own agent
    assert printed["tags"] == ["codex", "shop"]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (Codex's TUI wants a terminal)"
)
def test_relaybus_run_batch_types_the_waiting_messages_into_codex_as_one_turn(
    codex: str,
) -> None:
    """The real Codex TUI under ``relaybus run --batch``, in a tmux pane of a tmux
    server of the test's own (tmux answers the terminal queries Codex makes)."""
    root = Path(tempfile.mkdtemp(prefix="rbcb-", dir="/tmp"))
    home, project = root / "home", root / "home" / "shop"
    project.mkdir(parents=True)
    (home / ".codex").mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    api = FakeOpenAI()  # answers "ok"
    config = (
        'model = "stand-in-model"\nmodel_provider = "stand-in"\n'
        f'[model_providers.stand-in]\nname = "stand-in"\nbase_url = "{api.url}"\n'
        'wire_api = "responses"\nenv_key = "STAND_IN_KEY"\n'
        f'[projects."{project}"]\ntrust_level = "trusted"\n'
    )
    (home / ".codex" / "config.toml").write_text(config, encoding="utf-8")
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "RELAYBUS_DIR": str(root / "relay"),
        "STAND_IN_KEY": "sk-test-not-a-key",
        "TERM": "xterm-256color",
    }
    socket = str(root / "tmux.sock")
    try:
        with Relay.open(dir=root / "relay") as relay, api.running():
            alice = relay.register("alice", pid=None)
            relay.register("cx", pid=None).update(status="offline")
            sent = [alice.send("cx", f"NOTE-{n} look at item {n}") for n in range(3)]
            runner = [RELAYBUS, "run", "--name", "cx", "--batch", "--", codex, "--no-daemon"]
            command = " ".join(
                [
                    "env",
                    *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                    *map(shlex.quote, runner),
                ]
            )
            subprocess.run(
                [
                    "tmux",
                    "-S",
                    socket,
                    "new-session",
                    "-d",
                    "-x",
                    "150",
                    "-y",
                    "45",
                    "-c",
                    str(project),
                    command,
                ],
                check=True,
            )

            def asked() -> list[str]:
                """The user turns of the conversation the model was asked about."""
                return [
                    part.get("text", "")
                    for request in api.recorded.all()
                    for item in request["input"]
                    if item.get("role") == "user"
                    for part in item.get("content") or []
                    if "NOTE-0" in part.get("text", "")
                ]

            assert until(asked, HUNG), "Codex never asked the model"
            [turn] = asked()  # one user turn holds the three messages
            assert turn.startswith("[relaybus: 3 messages]")
            assert all(
                f"[relaybus #{m.id} from alice] NOTE-{n} " in turn for n, m in enumerate(sent)
            )
            for message in sent:  # read once Codex answered and went idle
                [receipt] = relay.deliveries(message.id, until="read", timeout=HUNG)
                assert receipt.via is not None and receipt.via.value == "pty"
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], check=False, capture_output=True)
        warm.stop(root / "relay")
        shutil.rmtree(root, ignore_errors=True)
