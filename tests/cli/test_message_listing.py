"""``relaybus messages``: the listing, filtered, as admin or as an agent, marking nothing."""

from __future__ import annotations

from relaybus import Relay
from tests.cli.conftest import Cli


def test_messages_lists_filters_and_keeps_each_agent_to_its_own_mail(
    cli: Cli, relay: Relay
) -> None:
    relay.register("carol")
    alice = relay.agent("alice")
    alice.send("bob", "hello bob", channel="ops")
    alice.send("carol", "for carol only")

    everything, filtered, as_bob, grep, none, bad = cli.run_all(
        [
            "messages",
            "messages --from alice --to bob --channel ops --json",
            "--as bob messages --json",
            "--as bob messages --grep CAROL",
            "messages --to nobody-here",
            "messages --limit 0",
        ]
    )

    assert everything.code == 0, everything
    assert "for carol only" in everything.out and "hello bob" in everything.out
    assert [m["body"] for m in filtered.json()] == ["hello bob"]
    assert [m["body"] for m in as_bob.json()] == ["hello bob"]
    assert (grep.code, grep.out, grep.err_lines) == (0, "", ["no messages"])
    assert (none.code, none.err_lines) == (0, ["no messages"])
    assert bad.code == 2 and "limit" in bad.err
    assert relay.agent("bob").unread_count() == 1  # listing reads nothing
