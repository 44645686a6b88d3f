"""relaybus pair invite | accept | reject | send | hangup | status: a pair session from the
command line, acting as --as; refusals are one line on stderr."""

from __future__ import annotations

import json

import pytest

from relaybus import Relay
from relaybus.models import PairStatus
from tests.cli.conftest import Cli


def test_a_pair_session_from_the_command_line(cli: Cli, relay: Relay) -> None:
    # Real processes: the commands as a user runs them.
    invited = cli('--as alice pair invite bob "fix the flaky login test" --json')
    pair_id = invited.json()["id"]
    accepted = cli(f"--as bob pair accept {pair_id}")
    said = cli(f'--as alice pair send {pair_id} "I take the parser"')
    inbox = cli("--as bob inbox")
    status = cli("--as bob pair status")
    ended = cli(f"--as bob pair hangup {pair_id}")

    assert invited.code == 0, invited
    assert invited.json()["status"] == "pending"
    assert accepted.out == f"pair {pair_id}: active with alice\n", accepted
    assert said.code == 0 and said.out.startswith("sent #") and "to bob on pair" in said.out
    assert f"alice → bob · pair {pair_id} · re #" in inbox.out
    assert status.code == 0 and "fix the flaky login test" in status.out and "active" in status.out
    assert ended.out == f"pair {pair_id}: ended\n"
    bob = relay.agent("bob")
    assert [m.body for m in bob.inbox(unread_only=False)][0] == "I take the parser"
    assert relay.pair(pair_id).status is PairStatus.ENDED


def test_a_second_invite_fails_in_one_line_naming_the_pair(cli_here: Cli, relay: Relay) -> None:
    first = cli_here("--as alice pair invite bob one --json").json()["id"]

    busy = cli_here("--as carol pair invite bob two")
    busy_json = cli_here("--as carol --json pair invite bob two")
    not_invitee = cli_here(f"--as alice pair accept {first}")
    not_active = cli_here(f"--as alice pair send {first} hello")

    assert busy.code == 1 and busy.out == ""
    [line] = busy.err_lines
    assert line.startswith("relaybus: error: bob is already in pair") and f"pair {first}" in line
    assert json.loads(busy_json.err)["pair"] == first
    assert not_invitee.code == 1 and len(not_invitee.err_lines) == 1
    assert "only bob" in not_invitee.err
    assert not_active.code == 1 and "pending" in not_active.err


def test_reject_and_status_of_one_pair_and_of_the_workspace(cli_here: Cli, relay: Relay) -> None:
    pair_id = cli_here("--as alice pair invite bob one --json").json()["id"]

    rejected = cli_here(f"--as bob pair reject {pair_id}")
    shown = cli_here(f"--as alice pair status {pair_id}")
    every = cli_here("pair status --json")  # no agent: every pair of the workspace
    none = cli_here("--as carol pair status")
    filtered = cli_here("--as alice pair status --status pending --json")

    assert rejected.out == f"pair {pair_id}: rejected\n"
    assert "rejected" in shown.out and "objective" in shown.out
    assert [p["id"] for p in every.json()] == [pair_id]
    assert none.code == 0 and none.err == "no pairs\n"
    assert filtered.json() == []


@pytest.mark.parametrize(
    "command",
    [
        "--as alice pair invite nobody x",
        "--as alice pair accept 99",
        "--as alice pair invite bob ''",
    ],
)
def test_bad_pair_commands_exit_2_in_one_line(cli_here: Cli, relay: Relay, command: str) -> None:
    result = cli_here(command)

    assert result.code == 2, result
    assert len(result.err_lines) == 1 and result.err.startswith("relaybus: error:")


def test_the_cli_statuses_are_the_models() -> None:
    from relaybus.cli.pairs import PAIR_STATUSES

    assert PAIR_STATUSES == tuple(s.value for s in PairStatus)
