"""The in-process runner of the CLI tests (:meth:`Cli.in_process`) answers as the process does.

The same commands, in the same order, on two relays set up alike: one through real
``relaybus`` processes, one in the test's process. Exit status, stdout and stderr must be equal
for output, stdin, the environment, usage errors, bad input (text and ``--json``) and a refused
state change; and both relays must end up holding the same messages.
"""

from __future__ import annotations

from pathlib import Path

from relaybus import Relay
from tests.cli.conftest import Cli, Result
from tests.support.template import seed_sqlite

#: (command, stdin, environment overrides), run in this order on each relay.
COMMANDS: list[tuple[str, str, dict[str, str]]] = [
    ("--as alice send --to bob -", "hello from stdin\n", {}),
    ("send --to bob hi", "", {"RELAYBUS_AGENT": "alice"}),
    ('--as alice send --to bob "nine byte"', "", {"RELAYBUS_MAX_BODY_BYTES": "8"}),
    ("--as alice send --to bobb hi", "", {}),
    ("--json --as alice send --to bobb hi", "", {}),
    ("task 1 --status blocked", "", {}),
    ("agentz", "", {}),
    ("--version", "", {}),
]


def cli_on_a_new_relay(root: Path) -> Cli:
    """A CLI on a relay in ``root`` with alice and bob, and task 1 open."""
    cli = Cli(root / ".relay", root)
    seed_sqlite(cli.relay_dir / "relay.db")
    with Relay.open(dir=cli.relay_dir) as relay:
        relay.register("alice")
        relay.register("bob")
        relay.agent("alice").send("bob", "PR 7", claimable=True)
    return cli


def bodies(cli: Cli) -> list[str]:
    with Relay.open(dir=cli.relay_dir) as relay:
        return [m.body for m in relay.agent("bob").inbox(unread_only=False, newest_first=False)]


def test_a_command_run_in_process_answers_as_the_relaybus_process(tmp_path: Path) -> None:
    (tmp_path / "process").mkdir()
    (tmp_path / "here").mkdir()
    process, here = cli_on_a_new_relay(tmp_path / "process"), cli_on_a_new_relay(tmp_path / "here")

    by_process = [process(c, input=i, env=e) for c, i, e in COMMANDS]
    in_process = [here.in_process(c, input=i, env=e) for c, i, e in COMMANDS]

    def answer(result: Result) -> tuple[int, str, str]:
        return result.code, result.out, result.err

    assert [answer(r) for r in in_process] == [answer(r) for r in by_process]
    assert {r.code for r in by_process} == {0, 1, 2}  # each kind of ending was compared
    assert bodies(here) == bodies(process) == ["PR 7", "hello from stdin", "hi"]
