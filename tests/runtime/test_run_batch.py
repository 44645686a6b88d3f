"""``relaybus run --batch``: the messages waiting at an idle moment typed as one
input (one turn of an agent CLI), with the REPL stand-in (:mod:`tests.runtime.repl`)
in a real pseudo-terminal, against a real SQLite relay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from relaybus import Relay
from relaybus.models import DeliveryState, Message, Via
from relaybus.runtime import ENTER, PASTE_END, PASTE_START, batch_keystrokes, render
from relaybus.runtime.keys import LINE_BREAK
from tests.runtime.test_run import HUNG, PROMPT, Term, received, repl, states
from tests.runtime.test_run import env as env  # noqa: F401  (fixtures)
from tests.runtime.test_run import relay as relay  # noqa: F401
from tests.runtime.test_run import term as term  # noqa: F401


def inputs_with(text: str, messages: list[Message]) -> list[str]:
    """The REPL's inputs that name any of ``messages``."""
    return [
        r.text for r in received(text) if any(f"[relaybus #{m.id} " in r.text for m in messages)
    ]


def send_while_busy(t: Term, relay: Relay, count: int) -> list[Message]:
    """Make the REPL busy, send ``count`` messages meanwhile, wait until it is done."""
    alice = relay.register("alice", pid=None)
    t.type("busy 1.5\r")
    t.expect("^BUSY-START")
    sent = [alice.send("worker", f"note {n}\nsecond line of {n}") for n in range(count)]
    t.expect("^BUSY-END")
    return sent


@pytest.mark.parametrize("paste", [True, False], ids=["bracketed-paste", "line-mode"])
def test_messages_pending_at_an_idle_moment_are_typed_as_one_input(
    term: Callable[[list[str]], Term], relay: Relay, paste: bool
) -> None:
    t = term(["--name", "worker", "--quiet", "0.3", "--prompt", PROMPT, "--batch", *repl()])
    t.expect(r"repl> ")
    if paste:
        t.type("paste on\r")
        t.expect(r'IN\|.*"paste on"')
    sent = send_while_busy(t, relay, 3)
    t.expect_message(sent[0])
    [receipt] = relay.deliveries(sent[-1].id, until="read", timeout=HUNG)
    t.type("exit 0\r")
    assert t.wait_exit() == 0

    [one] = inputs_with(t.text, sent)  # one input for the three: one turn
    assert one.startswith("[relaybus: 3 messages] " if not paste else "[relaybus: 3 messages]\n")
    assert [one.index(f"[relaybus #{m.id} ") for m in sent] == sorted(
        one.index(f"[relaybus #{m.id} ") for m in sent
    )  # oldest first
    if paste:
        assert all(render(m) in one for m in sent)  # each framed as when typed alone
    else:
        assert "\n" not in one and one.count(LINE_BREAK) == 3 * 3  # three lines each
    assert receipt.state is DeliveryState.READ
    assert states(relay, *sent) == [(DeliveryState.READ, Via.PTY)] * 3


def test_a_batch_holds_at_most_n_messages_and_the_rest_go_in_the_next_turn(
    term: Callable[[list[str]], Term], relay: Relay
) -> None:
    args = ["--name", "worker", "--quiet", "0.3", "--prompt", PROMPT, "--batch", "2"]
    t = term([*args, *repl()])
    t.expect(r"repl> ")
    t.type("paste on\r")
    t.expect(r'IN\|.*"paste on"')
    sent = send_while_busy(t, relay, 3)
    t.expect_message(sent[2])
    relay.deliveries(sent[2].id, until="read", timeout=HUNG)
    t.type("exit 0\r")
    assert t.wait_exit() == 0

    first, second = inputs_with(t.text, sent)
    assert first.startswith("[relaybus: 2 messages]")
    assert f"#{sent[0].id} " in first and f"#{sent[1].id} " in first
    assert second == render(sent[2])  # one left: typed as a single message is
    assert states(relay, *sent) == [(DeliveryState.READ, Via.PTY)] * 3


def test_one_pending_message_is_typed_as_without_batch_and_bad_sizes_are_refused(
    env: dict[str, str],  # noqa: F811
) -> None:
    message = Message.model_construct(
        id=7, sender="alice", body="hi", subject=None, channel=None, task_id=None
    )
    assert batch_keystrokes([message], "framed", bracketed=True) == [
        PASTE_START + render(message).encode() + PASTE_END,
        ENTER,
    ]
    refused = subprocess.run(
        [sys.executable, "-m", "relaybus", "run", "--batch", "0", "--", "true"],
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert refused.returncode == 2, refused
    assert refused.stderr == "relaybus: error: --batch must be 1 or more messages, not 0\n"
