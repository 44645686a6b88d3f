"""Bad input: one line on stderr, exit 2 (1 for a refused state change), nothing changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaybus import Relay
from relaybus.bounds import MAX_ID, MAX_META_DEPTH
from tests.cli.conftest import Cli


@dataclass(frozen=True)
class Case:
    command: str
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)


SEND = "--as alice send --to"
#: Past 2^63-1: no database holds it (it used to be an OverflowError, "internal error").
HUGE = 2**63
IDS = f"between 1 and {MAX_ID}, not {HUGE}"
CURSORS = f"between 0 and {MAX_ID}, not {HUGE}"


def deep_meta(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


#: Numbers and meta out of bounds: checks of the parsing and its message, run in the test's
#: process (:meth:`Cli.in_process`); how the exit status and the line leave a real process is
#: :func:`test_bad_input_exits_with_one_line_and_changes_nothing`'s.
OUT_OF_BOUNDS = [
    Case(f"thread {HUGE}", 2, f"message id must be {IDS}"),
    Case("thread 0", 2, f"message id must be between 1 and {MAX_ID}, not 0"),
    Case(f"status {HUGE}", 2, f"message id must be {IDS}"),
    Case(f"--as alice reply {HUGE} hi", 2, f"reply_to must be {IDS}"),
    Case(f"{SEND} bob --reply-to {HUGE} hi", 2, f"reply_to must be {IDS}"),
    Case(f"--as alice claim {HUGE}", 2, f"task id must be {IDS}"),
    Case(f"task {HUGE} --status done", 2, f"task id must be {IDS}"),
    Case(f"--as bob inbox --since {HUGE}", 2, f"since must be {CURSORS}"),
    Case(f"events --since {HUGE}", 2, f"since must be {CURSORS}"),
    Case(f"--as alice --epoch {HUGE} send --to bob hi", 2, f"epoch must be {CURSORS}"),
    Case("tasks --limit 100000", 2, "limit must be between 1 and 1000, not 100000"),
    Case(
        f"{SEND} bob --meta '{deep_meta(MAX_META_DEPTH + 1)}' hi",
        2,
        f"meta is nested more than {MAX_META_DEPTH} levels deep",
    ),
    Case(f"{SEND} bob --meta '{deep_meta(5000)}' hi", 2, "--meta is nested too deeply"),
    Case("--as alicee inbox --wait 60", 2, "no agent 'alicee' (did you mean 'alice'?)"),
]
CASES = [
    Case(f"{SEND} bobb hi", 2, "target 'bobb' matches no agent (did you mean 'bob'?)"),
    Case(f"{SEND} foo:bar hi", 2, "unknown target prefix 'foo:' in 'foo:bar'"),
    Case(
        f'{SEND} bob "nine byte"',
        2,
        "message body is 9 bytes; the limit is 8",
        env={"RELAYBUS_MAX_BODY_BYTES": "8"},
    ),
    Case(f"{SEND} bob --meta '{{pr: 7}}' hi", 2, "--meta is not valid JSON"),
    Case(f"{SEND} bob --meta '[7]' hi", 2, "--meta must be a JSON object"),
    Case(f"{SEND} bob --priority asap hi", 2, "Invalid value for '--priority'"),
    Case("send --to bob hi", 2, "who are you? pass --as NAME or set RELAYBUS_AGENT"),
    Case("--as alicee inbox", 2, "no agent 'alicee' (did you mean 'alice'?)"),
    Case("--as alice --epoch 1 send --to bob hi", 1, "stale epoch 1 for agent 'alice'"),
    Case("task 1 --status blocked", 1, "task 1 cannot go from open to blocked"),
    Case("--as bob inbox --wait 5 --all", 2, "does not combine with --all"),
]


def test_bad_input_exits_with_one_line_and_changes_nothing(cli: Cli, relay: Relay) -> None:
    relay.agent("bob").send("cap:review", "PR 7", claimable=True)  # task 1, open
    relay.register("alice")  # a new instance: epoch 2 fences off epoch 1
    before = cli.snapshot()
    started = [(case, cli.popen(case.command, env=case.env)) for case in CASES]
    results = [(case, cli.finish(proc, case.command)) for case, proc in started]

    for case, result in results:
        assert result.code == case.code, result
        assert result.out == "", result
        assert len(result.err_lines) == 1, result
        assert result.err.startswith("relaybus: error: "), result
        assert case.says in result.err, result
    assert cli.snapshot() == before


def test_numbers_and_meta_out_of_bounds_exit_2_with_one_line_and_change_nothing(
    cli: Cli, relay: Relay
) -> None:
    relay.agent("bob").send("cap:review", "PR 7", claimable=True)
    before = cli.snapshot()
    for case in OUT_OF_BOUNDS:
        result = cli.in_process(case.command, env=case.env)
        assert result.code == case.code, result
        assert result.out == "", result
        assert len(result.err_lines) == 1, result
        assert result.err.startswith("relaybus: error: "), result
        assert case.says in result.err, result
        assert "internal error" not in result.err, result
    assert cli.snapshot() == before


def test_a_mistyped_command_is_one_line_naming_the_close_commands(cli: Cli) -> None:
    result = cli("agentz")
    assert result.code == 2
    assert result.err_lines == [
        "relaybus: error: No such command 'agentz'. Did you mean 'agents'? (see 'relaybus --help')"
    ]
