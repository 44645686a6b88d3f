"""whoami, label, tags, caps, channels: a running agent's identity changed in place, by
real ``relaybus`` processes, while another process holds the agent's registration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.client import AgentHandle
from relaybus.identity import HOSTNAME, session_identity
from relaybus.tools.session import session_agent
from tests.cli.conftest import CALL_TIMEOUT, Cli


@pytest.fixture
def holder(relay: Relay) -> AgentHandle:
    """``runner``, registered as a runner registers it: its own instance, its epoch held."""
    return relay.register("runner", instance_id="run-1", tags=["backend"], pid=None)


def test_label_tags_caps_and_channels_change_in_place_and_the_holder_is_not_fenced_off(
    cli: Cli, relay: Relay, holder: AgentHandle
) -> None:
    results = [
        cli('--as runner label "API writer"'),
        cli("--as runner tags add python go"),
        cli("--as runner tags rm backend --json"),
        cli("--as runner caps add review"),
        cli("--as runner channels join ops ci"),
        cli("--as runner channels leave ci --json"),
    ]

    for result in results:
        assert result.code == 0, result
    assert results[0].out == "runner label: API writer\n"
    assert results[1].out == "runner tags: backend,python,go\n"
    assert results[2].json()["tags"] == ["python", "go"]
    assert results[5].json()["channels"] == ["ops"]
    agent = holder.heartbeat()  # carries the epoch it registered with: not fenced off
    assert agent.epoch == holder.epoch == 1
    assert (agent.label, agent.tags) == ("API writer", ["python", "go"])
    assert (agent.capabilities, agent.channels) == (["review"], ["ops"])
    sent = relay.agent("alice").send("tag:python", "ping", channel="ops")
    assert sent.recipients == ["runner"]
    assert [m.body for m in holder.inbox()] == ["ping"]


def test_adding_and_removing_again_changes_nothing(
    cli: Cli, relay: Relay, holder: AgentHandle
) -> None:
    first, again = cli("--as runner tags add python"), cli("--as runner tags add python --json")
    gone, still_gone = cli("--as runner caps rm review"), cli("--as runner caps rm review")

    assert [r.code for r in (first, again, gone, still_gone)] == [0, 0, 0, 0]
    assert again.json()["tags"] == ["backend", "python"]
    assert still_gone.out == "runner capabilities: -\n"
    assert holder.info().epoch == 1


def test_concurrent_tags_add_of_different_tags_all_land(
    cli: Cli, relay: Relay, holder: AgentHandle
) -> None:
    results = cli.run_all([f"--as runner tags add t{i}" for i in range(4)])

    assert [r.code for r in results] == [0] * 4, results
    assert sorted(holder.info().tags) == ["backend", "t0", "t1", "t2", "t3"]


@pytest.mark.parametrize(
    "command",
    [
        "--as runner tags add ok 'bad name'",
        "--as runner caps add ok/../é",
        "--as runner channels join '#ops'",
        "--as runner label ''",
        "--as runner tags rm",
        "--as nobody tags add ok",
        "tags add ok",
    ],
    ids=["tag", "cap", "channel", "label", "no-name", "unknown-agent", "no-agent"],
)
def test_a_bad_change_is_a_one_line_error_with_exit_2_and_changes_nothing(
    cli: Cli, relay: Relay, holder: AgentHandle, command: str
) -> None:
    before = cli.snapshot()

    result = cli(command)

    assert result.code == 2, result
    assert len(result.err_lines) == 1 and result.err.startswith("relaybus: error: "), result
    assert result.out == ""
    assert cli.snapshot() == before


def test_a_session_registered_as_the_hooks_register_it_gets_tool_and_project_tags(
    cli: Cli, relay: Relay, tmp_path: Path
) -> None:
    project = tmp_path / "shop-api"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    env = {"RELAYBUS_SESSION": "sess-17"}
    identity = session_identity("claude", cwd=str(project / "src"), env=env)
    me = session_agent(relay, identity, register=True)

    to_tool = cli('--as alice send --to tag:claude "for every claude session" --json')
    to_project = cli('--as alice send --to tag:shop-api "for the shop-api sessions" --json')
    to_chat = cli('--as alice send --to cap:chat "anyone to chat with?" --json')
    whoami = cli("whoami --json", env=env)
    tagged = cli("tags add reviewer --json", env=env)  # no --as: the session's own agent

    agent = me.info()
    assert (agent.tags, agent.capabilities) == (["claude", "shop-api", "reviewer"], ["chat"])
    for sent in (to_tool, to_project, to_chat):
        assert sent.code == 0, sent
        assert sent.json()["recipients"] == [me.id]
    assert whoami.code == 0, whoami
    shown = whoami.json()
    assert (shown["id"], shown["unread"], shown["epoch"]) == (me.id, 3, me.epoch)
    assert tagged.code == 0, tagged
    assert tagged.json()["id"] == me.id


def test_whoami_outside_a_registered_session_asks_who_you_are(cli: Cli, relay: Relay) -> None:
    result = cli("whoami", env={"RELAYBUS_SESSION": "sess-unknown"})

    assert result.code == 2, result
    assert result.err_lines == [
        "relaybus: error: who are you? pass --as NAME or set RELAYBUS_AGENT (no agent of a "
        "coding session that runs this command is registered here)"
    ]


def test_whoami_shows_the_agent_and_its_unread_count(cli: Cli, relay: Relay) -> None:
    relay.agent("bob").send("alice", "hello")

    result = cli("--as alice whoami")

    assert result.code == 0, result
    lines = dict(line.split(None, 1) for line in result.out.splitlines() if line.strip())
    assert lines["id"] == "alice" and lines["tags"] == "backend"
    assert lines["unread"] == "1" and lines["channels"] == "* (all)"


def test_changes_from_concurrent_processes_all_land_on_either_database(
    cli: Cli, database: str | None
) -> None:
    if database is not None:
        cli.env["RELAYBUS_DATABASE"] = database
    with Relay.open(dir=cli.relay_dir, database=database) as relay:
        holder = relay.register("runner", instance_id="run-1", pid=None)

        results = cli.run_all(
            [
                *(f"--as runner tags add t{i}" for i in range(3)),
                "--as runner caps add review chat",
                "--as runner channels join ops",
                "--as runner label builder",
            ]
        )

        assert [r.code for r in results] == [0] * 6, results
        agent = holder.heartbeat()
        assert (agent.epoch, agent.label) == (1, "builder")
        assert sorted(agent.tags) == ["t0", "t1", "t2"]
        assert (sorted(agent.capabilities), agent.channels) == (["chat", "review"], ["ops"])


#: A stand-in for a coding tool: it registers its session as the hooks do (a child that
#: derives the identity from its parent, this process), then runs ``relaybus ARGS`` through
#: a shell, as a tool's shell command runs it, and prints what that printed.
TOOL = """
import json, subprocess, sys
register = (
    "from relaybus import Relay; from relaybus.identity import session_identity; "
    "from relaybus.tools.session import session_agent; "
    "me = session_agent(Relay.open(), session_identity('claude'), register=True); print(me.id)"
)
agent = subprocess.run([sys.executable, "-c", register], capture_output=True, text=True, check=True)
shown = subprocess.run(
    ["sh", "-c", " ".join([sys.executable, "-m", "relaybus", *sys.argv[1:]])],
    capture_output=True, text=True,
)
print(json.dumps([agent.stdout.strip(), shown.returncode, shown.stdout, shown.stderr]))
"""


def test_whoami_inside_a_coding_session_finds_the_agent_its_hooks_registered(
    cli: Cli, tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    (project / ".git").mkdir(parents=True)
    env = {**cli.env, "CLAUDE_PROJECT_DIR": str(project)}
    tool = subprocess.run(
        [sys.executable, "-c", TOOL, "whoami", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=CALL_TIMEOUT,
        check=True,
    )

    registered, code, out, err = json.loads(tool.stdout)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == registered and registered.startswith(
        f"{HOSTNAME.split('.')[0]}-claude-shop-"
    )
    assert (shown["tags"], shown["capabilities"]) == (["claude", "shop"], ["chat"])
