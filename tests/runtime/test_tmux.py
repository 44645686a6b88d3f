"""The tmux adapter against a real tmux server of the test's own (a private socket,
killed at teardown), real programs in its panes, ``relaybus tmux`` run as a
subprocess and a relay in ``tmp_path``.

Waiting is event-driven: pane output arrives through a tmux control-mode client
and delivery receipts through :meth:`Relay.deliveries` (``until=``); nothing
sleeps to let time pass.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus import Relay
from relaybus.models import AgentStatus, DeliveryState, Priority
from relaybus.runtime.tmux import (
    Binding,
    CommandFailed,
    ControlClient,
    ControlClosed,
    Pane,
    TmuxServer,
)
from relaybus.runtime.tmux.control import quote, unescape
from relaybus.runtime.tmux.inject import type_text
from tests.runtime.tmuxutil import (
    HUNG,
    TMUX,
    Box,
    Watch,
    bodies,
    inputs,
    relaybus,
    send,
    shows,
    state,
)
from tests.runtime.tmuxutil import attach_fixture as attach_fixture  # noqa: F401  (the fixtures)
from tests.runtime.tmuxutil import box_fixture as box_fixture  # noqa: F401
from tests.runtime.tmuxutil import relay_fixture as relay_fixture  # noqa: F401
from tests.runtime.tmuxutil import watch_fixture as watch_fixture  # noqa: F401

pytestmark = pytest.mark.skipif(TMUX is None, reason="needs tmux (apt-get install tmux)")


# -- relaybus tmux attach ------------------------------------------------------


def test_messages_are_typed_once_in_order_only_after_the_pane_goes_quiet(
    box: Box,
    relay: Relay,
    watch: Callable[[Pane], Watch],
    attach: Callable[..., subprocess.Popen[str]],
) -> None:
    pane = box.new_pane()
    seen = watch(pane)
    seen.until(shows("ready"), "the program start")
    proc = attach(pane)
    hold = send(relay, "hold")
    assert state(relay, hold, until="delivered") is DeliveryState.DELIVERED
    later = [send(relay, body) for body in ("first", "second thing", "third, 'quoted' $HOME")]
    seen.until(lambda s: "tick 3" in s, "the program busy")

    # Busy: the typed message is delivered, not read, and nothing else went in.
    assert state(relay, hold) is DeliveryState.DELIVERED
    assert [state(relay, m) for m in later] == [DeliveryState.QUEUED] * 3
    box.release()
    assert state(relay, later[-1], until="read") is DeliveryState.READ

    screen = seen.screen()
    assert bodies(screen) == ["hold", "first", "second thing", "third, 'quoted' $HOME"]
    assert [early for early, _ in inputs(screen)] == [False] * 4
    assert screen.index("released") < next(i for i, s in enumerate(screen) if "] first" in s)
    for message in [hold, *later]:
        (receipt,) = relay.deliveries(message.id)
        assert receipt.state is DeliveryState.READ and receipt.via == "tmux"
        assert receipt.delivered_at is not None and receipt.read_at is not None
        assert receipt.delivered_at <= receipt.read_at

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=HUNG)
    assert proc.returncode == 0, err
    assert "stopped; alice is offline" in err
    assert relay.get_agent("alice").status is AgentStatus.OFFLINE


def test_an_urgent_message_goes_in_while_the_pane_is_busy(
    box: Box,
    relay: Relay,
    watch: Callable[[Pane], Watch],
    attach: Callable[..., subprocess.Popen[str]],
) -> None:
    pane = box.new_pane()
    seen = watch(pane)
    seen.until(shows("ready"), "the program start")
    attach(pane)
    hold = send(relay, "hold")
    state(relay, hold, until="delivered")
    normal = send(relay, "can wait")
    urgent = send(relay, "stop now", priority=Priority.URGENT)

    assert state(relay, urgent, until="delivered") is DeliveryState.DELIVERED
    assert state(relay, normal) is DeliveryState.QUEUED
    box.release()
    assert state(relay, normal, until="read") is DeliveryState.READ
    screen = seen.screen()
    assert bodies(screen) == ["hold", "stop now", "can wait"], "\n".join(screen)
    assert [early for early, _ in inputs(screen)] == [False, True, False]


def test_the_prompt_pattern_holds_messages_until_the_last_line_matches(
    box: Box,
    relay: Relay,
    watch: Callable[[Pane], Watch],
    attach: Callable[..., subprocess.Popen[str]],
) -> None:
    pane = box.new_pane()
    seen = watch(pane)
    seen.until(shows("ready"), "the program start")
    attach(pane, "--prompt", "^>$")
    rest = send(relay, "rest")
    state(relay, rest, until="delivered")
    seen.until(lambda s: s[-1:] == ["resting"], "the program resting")
    waiting = send(relay, "after the prompt")

    # The pane stays quiet for five quiet windows without a prompt: the message
    # waits for the prompt, and the rest message is read only then.
    assert state(relay, waiting, until="read") is DeliveryState.READ
    assert state(relay, rest) is DeliveryState.READ
    screen = seen.screen()
    assert bodies(screen) == ["rest", "after the prompt"]
    assert [early for early, _ in inputs(screen)] == [False, False]


def test_attach_ends_when_the_pane_closes_and_untyped_messages_stay_queued(
    box: Box,
    relay: Relay,
    watch: Callable[[Pane], Watch],
    attach: Callable[..., subprocess.Popen[str]],
) -> None:
    pane = box.new_pane()
    watch(pane).until(shows("ready"), "the program start")
    proc = attach(pane, "--json")
    hold = send(relay, "hold")
    state(relay, hold, until="delivered")
    left = send(relay, "never typed")

    box.tmux("kill-pane", "-t", pane.id)
    out, err = proc.communicate(timeout=HUNG)

    assert proc.returncode == 0, err
    bound, ended = (json.loads(line) for line in out.splitlines())
    assert bound == {
        "agent": "alice", "epoch": 2, "pane": pane.id, "socket": str(box.socket),
        "target": pane.target,
    }  # fmt: skip
    assert ended == {"agent": "alice", "ended": f"the tmux pane {pane.id} has closed"}
    assert state(relay, hold) is DeliveryState.DELIVERED
    assert state(relay, left) is DeliveryState.QUEUED
    alice = relay.get_agent("alice")
    assert alice.status is AgentStatus.OFFLINE
    assert alice.meta["tmux"]["pane"] == pane.id


#: Messages (raw) that make a Python REPL print ``TIMER`` 2 s (its clock) after it
#: first shows its continuation prompt "... " (as in test_run.py).
CONTINUATION_CLOCK = (
    "import sys, threading, time\nshown = threading.Event()",
    "class Continued:\n    def __str__(self):\n        shown.set()\n        return '... '",
    "sys.ps2 = Continued(); threading.Thread(target=lambda: (shown.wait(), time.sleep(2), "
    "print('TIMER')), daemon=True).start()",
)


def test_raw_format_runs_messages_in_a_python_repl_in_a_pane_and_holds_at_its_continuation(
    box: Box,
    relay: Relay,
    watch: Callable[[Pane], Watch],
    attach: Callable[..., subprocess.Popen[str]],
) -> None:
    command = f"exec {shlex.quote(sys.executable)} -q"
    pane_id = box.tmux(
        "new-window", "-d", "-P", "-F", "#{pane_id}", "-t", "work:", "-c", str(box.workdir),
        command,
    ).strip()  # fmt: skip
    pane = box.server.pane(pane_id)
    seen = watch(pane)
    seen.until(lambda s: s[-1:] == [">>>"], "the Python prompt")
    attach(pane, "--format", "raw", "--prompt", "^>>> ")
    answer = send(relay, "print(6*7)")
    block = send(relay, "for i in range(2):\n    print('row', i * 10)")
    assert state(relay, block, until="read") is DeliveryState.READ

    # Held at "... " (the REPL's clock shows the quiet window passed meanwhile).
    setup = [send(relay, body) for body in CONTINUATION_CLOCK]
    opened, held = send(relay, "if True:"), send(relay, "print('after')")
    seen.until(lambda s: any(line.endswith("TIMER") for line in s), "the timer")
    assert state(relay, opened, until="delivered") is DeliveryState.DELIVERED
    assert state(relay, held) is DeliveryState.QUEUED
    box.tmux("send-keys", "-t", pane.id, "-l", "    print('inside')")
    box.tmux("send-keys", "-t", pane.id, "Enter", "Enter")
    assert state(relay, held, until="read") is DeliveryState.READ

    look = relaybus(box, "tmux", "look", "alice", "--lines", "40")
    assert look.code == 0, look.err
    lines = look.out.splitlines()
    assert lines.index("42") < lines.index("row 10") < lines.index("inside") < lines.index("after")
    assert ">>> print(6*7)" in lines
    assert not any("relaybus #" in line for line in lines)  # the bodies alone
    for message in (answer, block, *setup, opened, held):
        (receipt,) = relay.deliveries(message.id)
        assert (receipt.state, receipt.via) == (DeliveryState.READ, "tmux")
    assert relay.get_agent("alice").meta["format"] == "raw"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["%99"], 2, "can't find pane: %99"),
        (["nosuch:0"], 2, "can't find session: nosuch"),
        (["work", "--prompt", "(oops"], 2, "--prompt '(oops' is not a valid regular expression"),
        (["work", "--quiet", "0"], 2, "the quiet window must be above 0 seconds"),
        (["work", "-S", "/nonexistent/sock"], 1, "no tmux server is running at that socket"),
        (["work", "-S", "a", "-L", "b"], 2, "give a tmux socket path (-S) or a socket name (-L)"),
    ],
)
def test_attach_refuses_bad_input_in_one_line_and_registers_nobody(
    box: Box, relay: Relay, args: list[str], code: int, says: str
) -> None:
    if "-S" not in args:
        args = [*args, "-S", str(box.socket)]
    result = relaybus(box, "tmux", "attach", *args, "--name", "carol")

    assert (result.code, result.out) == (code, ""), result.err
    assert result.err.startswith("relaybus: error: ") and says in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "carol" not in {a.id for a in relay.agents()}


def test_attach_without_tmux_on_the_path_says_so(box: Box, tmp_path: Path) -> None:
    box.env["PATH"] = str(tmp_path / "empty")
    result = relaybus(box, "tmux", "attach", "%0", "--name", "carol")

    assert result.code == 1
    assert result.err == "relaybus: error: tmux is not installed: no 'tmux' on PATH\n"


def test_attach_refuses_a_pane_another_online_agent_is_bound_to(box: Box, relay: Relay) -> None:
    pane = box.server.pane("work")
    relay.register("carol", meta={"tmux": Binding.of_pane(pane).meta()})

    result = relaybus(box, "tmux", "attach", "work", "-S", str(box.socket), "--name", "alice")

    assert result.code == 1
    assert f"tmux pane {pane.id} is already bound to agent carol (online)" in result.err


# -- relaybus tmux look --------------------------------------------------------


def test_look_prints_the_screen_of_the_agents_pane(
    box: Box, relay: Relay, watch: Callable[[Pane], Watch]
) -> None:
    pane = box.server.pane("work")  # cat: every line shows twice (echo, then cat)
    relay.register("carol", meta={"tmux": Binding.of_pane(pane).meta()})
    seen = watch(pane)
    for n in range(1, 6):  # one at a time: the echo of a line and cat's copy stay together
        box.tmux("send-keys", "-t", pane.id, "-l", f"line {n}\n")
        seen.until(shows(f"line {n}", times=2), f"line {n} twice")

    screen = relaybus(box, "tmux", "look", "carol")
    last = relaybus(box, "tmux", "look", "carol", "--lines", "3", "--json")

    assert screen.code == 0, screen.err
    assert screen.out.splitlines() == [f"line {n}" for n in range(1, 6) for _ in "ab"]
    assert last.code == 0, last.err
    assert last.out and json.loads(last.out) == {
        "agent": "carol", "pane": pane.id, "socket": str(box.socket), "target": "work:0.0",
        "lines": ["line 4", "line 5", "line 5"],
    }  # fmt: skip


def test_look_explains_an_agent_without_a_pane_or_with_a_closed_one(box: Box, relay: Relay) -> None:
    pane = box.new_pane()
    relay.register("carol", meta={"tmux": Binding.of_pane(pane).meta()})
    box.tmux("kill-pane", "-t", pane.id)

    unbound = relaybus(box, "tmux", "look", "bob")
    closed = relaybus(box, "tmux", "look", "carol")
    nobody = relaybus(box, "tmux", "look", "nobody")
    bad = relaybus(box, "tmux", "look", "carol", "--lines", "0")

    assert (unbound.code, unbound.err) == (
        2,
        "relaybus: error: agent bob is not bound to a tmux pane "
        "(bind one with: relaybus tmux attach PANE --name bob)\n",
    )
    assert closed.code == 2
    assert closed.err.startswith(f"relaybus: error: the tmux pane {pane.id} of agent carol is gone")
    assert nobody.code == 2 and "nobody" in nobody.err
    assert bad.code == 2 and "--lines must be at least 1" in bad.err


# -- the control-mode client and typing ---------------------------------------


def test_the_control_client_reports_output_of_watched_panes_only(
    box: Box, watch: Callable[[Pane], Watch]
) -> None:
    watched, other = box.new_pane(), box.new_pane()
    got: list[tuple[str, bytes]] = []
    cond = threading.Condition()

    def output(pane_id: str, data: bytes) -> None:
        with cond:
            got.append((pane_id, data))
            cond.notify_all()

    def text() -> bytes:
        return b"".join(data for _, data in got)

    with ControlClient(box.server, "work", on_output=output, watch=[watched.id]).start() as client:
        client.command("send-keys", "-t", other.id, "-l", "for the other pane\n")
        watch(other).until(lambda s: any("IN|" in x for x in s), "the other input")
        client.command("send-keys", "-t", watched.id, "-l", "tab\tback\\slash é\n")
        with cond:
            assert cond.wait_for(lambda: b"IN|" in text(), HUNG), got
        # Replies come after the output tmux queued before them: a reply now means
        # any output of the other pane would have been reported by now.
        client.command("display-message", "-p", "sync")

    assert {pane_id for pane_id, _ in got} == {watched.id}
    assert b'IN|0|"tab\\tback\\\\slash \\u00e9"' in text()
    assert b"tab\tback\\slash \xc3\xa9" in text()  # the echo, octal escapes decoded


def test_the_control_client_raises_tmux_errors_and_notices_the_server_going_away(
    box: Box,
) -> None:
    events: list[tuple[str, str]] = []
    client = ControlClient(box.server, "work", on_event=lambda n, a: events.append((n, a)))
    with client.start():
        with pytest.raises(CommandFailed, match="can't find pane: %77"):
            client.command("send-keys", "-t", "%77", "x")
        assert client.command("display-message", "-p", "#{session_name}") == ["work"]

        box.tmux("kill-server")

        assert client.wait_closed(HUNG)
        with pytest.raises(ControlClosed):
            client.command("display-message", "-p", "x")
    assert events[-1][0] == "exit"


def test_a_multi_line_text_is_one_bracketed_paste_only_when_the_program_asked(
    box: Box, watch: Callable[[Pane], Watch]
) -> None:
    for mode, expected in [
        ("raw paste", b"\x1b[200~one\rtwo    'x' $HOME\x1b[201~\r"),
        ("raw", b"one\rtwo    'x' $HOME\r"),
    ]:
        pane = box.new_pane(mode)
        seen = watch(pane)
        seen.until(shows("ready"), "the program start")
        with ControlClient(box.server, "work").start() as client:
            type_text(client, pane.id, "one\ntwo\t'x' $HOME", buffer="relaybus-test")
            done = f"bytes={len(expected)}"
            seen.until(shows(done), done)
            assert client.command("list-buffers") == []
        assert (box.workdir / "raw.log").read_bytes() == expected
        box.tmux("kill-pane", "-t", pane.id)


def test_a_long_line_is_typed_in_chunks_then_enter(
    box: Box, watch: Callable[[Pane], Watch]
) -> None:
    pane = box.new_pane("raw")
    seen = watch(pane)
    seen.until(shows("ready"), "the program start")
    text = "ä" * 700 + "b" * 300  # 1700 bytes: four send-keys chunks, split between characters
    with ControlClient(box.server, "work").start() as client:
        type_text(client, pane.id, text, buffer="relaybus-test")
    expected = text.encode() + b"\r"
    seen.until(lambda s: f"bytes={len(expected)}" in s, f"{len(expected)} bytes")
    assert (box.workdir / "raw.log").read_bytes() == expected


def test_quoted_words_reach_tmux_unchanged(box: Box) -> None:
    path = box.workdir / "word"
    with ControlClient(box.server, "work").start() as client:

        @given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])))
        @settings(max_examples=60, deadline=None, database=None)
        def reaches(word: str) -> None:
            assert "\n" not in quote(word)
            client.command("set-buffer", "-b", "w", "--", word or " ")
            client.command("save-buffer", "-b", "w", str(path))
            assert path.read_bytes() == (word or " ").encode("utf-8")

        reaches()


def test_output_escapes_decode_to_bytes() -> None:
    assert unescape(b"a\\134b\\015\\012\\033[1m\xc3\xa9") == b"a\\b\r\n\x1b[1m\xc3\xa9"


def test_the_server_comes_from_tmux_unless_a_socket_is_given() -> None:
    inside = {"TMUX": "/tmp/tmux-1/default,123,0", "PATH": os.environ["PATH"]}

    assert TmuxServer.choose(env=inside).socket_path == "/tmp/tmux-1/default"
    assert TmuxServer.choose(socket_name="x", env=inside).argv("ls")[1:] == ["-L", "x", "ls"]
    assert TmuxServer.choose(env={"PATH": os.environ["PATH"]}).argv("ls")[1:] == ["ls"]
