"""What a runtime types for a pair's messages: ``[pair N]`` in the header and the
``relaybus pair`` command that answers (accept or reject an invite; pair send)."""

from __future__ import annotations

from pathlib import Path

from relaybus import Relay
from relaybus.runtime.keys import render


def test_a_pair_message_shows_its_pair_and_how_to_answer_on_it(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / "relay") as relay:
        alice, bob = relay.register("alice", pid=None), relay.register("bob", pid=None)
        pair = alice.pair_invite("bob", "fix CI")
        [invite] = bob.inbox()
        bob.pair_accept(pair.id)
        said = alice.pair_send(pair.id, "I take the parser")

    first = render(invite).splitlines()
    assert first[0].startswith(f"[relaybus #{invite.id} from alice [pair {pair.id}] · pair ")
    assert first[-1] == f"(relaybus pair accept {pair.id}, or: relaybus pair reject {pair.id})"
    assert render(said, reply_as="bob") == (
        f"[relaybus #{said.id} from alice [pair {pair.id}]] I take the parser"
        f' (pair: relaybus --as bob pair send {pair.id} "...")'
    )
