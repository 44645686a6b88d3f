"""Bad input: one line on stderr, exit 2 (1 for a refused state change), nothing changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaybus import Relay

from .conftest import Cli


@dataclass(frozen=True)
class Case:
    command: str
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)


SEND = "--as alice send --to"
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
