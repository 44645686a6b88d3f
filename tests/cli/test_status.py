"""``relaybus status MSG_ID`` (receipts per recipient, ``--wait``) and the stuck
column of ``relaybus agents``."""

from __future__ import annotations

import pytest

from relaybus import Relay
from relaybus.models import Via
from tests.cli.conftest import Cli


@pytest.fixture
def cli(cli_here: Cli) -> Cli:
    """The CLI in the test's process: these tests check what the commands print and do to
    the relay (the processes themselves are tested in test_in_process.py and elsewhere)."""
    return cli_here


def test_status_shows_where_each_copy_is(cli: Cli, relay: Relay) -> None:
    sent = relay.agent("alice").send("cap:review", "review PR 7")
    relay.agent("bob").mark_delivered([sent.id], via=Via.PTY)
    relay.agent("carol").read()

    shown = cli(f"status {sent.id}")
    as_json = cli(f"status {sent.id} --json")

    assert shown.code == 0, shown
    header, bob, carol = shown.out.splitlines()
    assert header.split() == ["AGENT", "STATE", "VIA", "DELIVERED", "READ"]
    assert bob.split()[:3] == ["bob", "delivered", "pty"] and bob.split()[-1] == "-"
    assert carol.split()[:3] == ["carol", "read", "inbox"]
    assert as_json.code == 0, as_json
    assert [(d["agent_id"], d["state"], d["via"]) for d in as_json.json()] == [
        ("bob", "delivered", "pty"),
        ("carol", "read", "inbox"),
    ]


def test_status_wait_returns_once_everyone_has_read(cli: Cli, relay: Relay) -> None:
    sent = relay.agent("alice").send("bob", "lunch?")
    waiting = cli.popen(f"status {sent.id} --wait read --timeout 60 --json")
    relay.agent("bob").read()
    done = cli.finish(waiting, "status --wait read")
    assert done.code == 0, done
    assert [d["state"] for d in done.json()] == ["read"]


def test_status_wait_that_times_out_exits_124_and_names_who_is_behind(
    cli: Cli, relay: Relay
) -> None:
    sent = relay.agent("alice").send("cap:review", "review PR 8")
    relay.agent("carol").mark_delivered([sent.id], via=Via.TMUX)

    timed_out = cli(f"status {sent.id} --wait delivered --timeout 0")

    assert timed_out.code == 124, timed_out
    assert timed_out.err_lines == ["relaybus: timed out after 0 s: not yet delivered by bob"]
    assert "bob" in timed_out.out and "carol" in timed_out.out


def test_status_of_an_unknown_message_is_one_line_and_exit_2(cli: Cli, relay: Relay) -> None:
    missing = cli("status 999")
    bad_state = cli("status 1 --wait seen")
    assert (missing.code, missing.err_lines) == (2, ["relaybus: error: no message 999"])
    assert bad_state.code == 2 and len(bad_state.err_lines) == 1
    assert "'seen' is not one of 'delivered', 'read'" in bad_state.err


def test_agents_lists_deliveries_stuck_while_the_agent_is_online(cli: Cli, relay: Relay) -> None:
    relay.agent("alice").send("bob", "are you there?")

    listed = cli("agents", env={"RELAYBUS_STUCK_AFTER": "0.001"})
    as_json = cli("agents --json", env={"RELAYBUS_STUCK_AFTER": "0.001"})
    relaxed = cli("agents --json")

    assert listed.code == 0, listed
    rows = {line.split()[0]: line.split() for line in listed.out.splitlines()[1:]}
    assert rows["bob"][-1] == "1" and rows["alice"][-1] == "-"
    assert "1 message(s) queued past RELAYBUS_STUCK_AFTER" in listed.err
    assert {a["id"]: a["stuck"] for a in as_json.json()} == {"alice": 0, "bob": 1, "carol": 0}
    assert {a["stuck"] for a in relaxed.json()} == {0}  # under the default 60 s
