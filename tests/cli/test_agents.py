"""register, agents, heartbeat, unregister."""

from __future__ import annotations

import pytest

from relaybus import Relay
from tests.cli.conftest import Cli


@pytest.fixture
def cli(cli_here: Cli) -> Cli:
    """The CLI in the test's process: these tests check what the commands print and do to
    the relay (the processes themselves are tested in test_in_process.py and elsewhere)."""
    return cli_here


def test_register_prints_id_epoch_and_agents_lists_it(cli: Cli) -> None:
    human = cli("register alice --cap review")
    registered = cli(
        'register bob --label "test writer" --tag backend --tag api --cap review --channel ci '
        """--meta '{"tool": "codex"}' --json"""
    )
    listed, reviewers = cli.run_all(["agents --json", "agents --cap review --tag api --json"])

    assert human.code == 0, human
    assert human.out.splitlines() == [
        "registered alice (epoch 1)",
        "act as it with --as alice, or: export RELAYBUS_AGENT=alice",
    ]
    bob = registered.json()
    assert bob["id"] == "bob" and bob["epoch"] == 1
    assert bob["label"] == "test writer"
    assert bob["tags"] == ["backend", "api"] and bob["capabilities"] == ["review"]
    assert bob["channels"] == ["ci"] and bob["meta"] == {"tool": "codex"}
    assert bob["pid"] is None  # the CLI process exits at once: presence is by heartbeat
    assert bob["status"] == "online"
    assert listed.code == 0, listed
    assert [a["id"] for a in listed.json()] == ["alice", "bob"]
    assert [a["id"] for a in reviewers.json()] == ["bob"]


def test_agents_without_json_prints_a_table(cli: Cli, relay: Relay) -> None:
    result = cli("agents")

    assert result.code == 0, result
    header, *rows = result.out.splitlines()
    expected = "ID STATUS LABEL TAGS CAPS CHANNELS APPROVAL EPOCH LAST SEEN STUCK"
    assert header.split() == expected.split()
    assert [r.split()[:2] for r in rows] == [
        ["alice", "online"],
        ["bob", "online"],
        ["carol", "online"],
    ]


def test_heartbeat_sets_status_and_unregister_removes_the_agent(cli: Cli, relay: Relay) -> None:
    busy = cli("--as bob heartbeat --status busy --json")
    gone = cli("--as carol unregister")

    assert busy.code == 0, busy
    assert busy.json()["status"] == "busy"
    assert relay.get_agent("bob").status == "busy"
    assert gone.code == 0, gone
    assert gone.out.strip() == "unregistered carol"
    assert [a.id for a in relay.agents()] == ["alice", "bob"]
