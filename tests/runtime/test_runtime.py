"""The runtime core shared by the PTY runner and the tmux adapter: idle detection,
the emulated screen, keystrokes, the mailbox with its receipts, presence.

Real parts: pyte for the screen, a real relay (SQLite in tmp_path) for the
mailbox and presence, whose background threads are waited on with deadlines.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.client import AgentHandle
from relaybus.errors import InvalidInput, StoreError
from relaybus.models import AgentStatus, DeliveryState, Message, Via
from relaybus.runtime import (
    ENTER,
    PASTE_END,
    PASTE_START,
    IdleGate,
    InjectMode,
    Mailbox,
    MessageFormat,
    Presence,
    Screen,
    Worker,
    keystrokes,
    last_nonblank,
    message_keystrokes,
    parse_format,
    prompt_line,
    raw_keystrokes,
    raw_text,
    render,
)
from relaybus.runtime.screen import KEEP_BYTES

HUNG = 30.0
#: The mailboxes' long-poll in these tests, seconds: stop(join=True) waits for one.
POLL = 0.3

# -- IdleGate --------------------------------------------------------------------


def test_a_program_is_idle_once_the_quiet_window_passed_without_activity() -> None:
    gate = IdleGate(0.5, now=100.0)
    assert not gate.idle("$", 100.4)
    assert gate.deadline() == 100.5
    assert gate.idle("$", 100.5)
    gate.activity(101.0)
    assert not gate.idle("$", 101.2)
    assert gate.idle("$", 101.6)


def test_a_prompt_pattern_must_also_match_the_last_screen_line() -> None:
    gate = IdleGate(0.5, r"^>$", now=0.0)
    assert gate.idle(">", 1.0)
    assert gate.idle(">   ", 1.0)  # trailing blanks do not count
    assert not gate.idle("thinking...", 1.0)


def test_a_prompt_pattern_may_end_with_the_prompt_s_blank_or_without_it() -> None:
    gate = IdleGate(0.5, r"^>>> ", now=0.0)
    assert gate.idle(">>> ", 1.0)
    assert not gate.idle("... ", 1.0)
    assert not gate.idle(">>>", 1.0)  # the screen has no blank there: not this prompt
    assert IdleGate(0.5, r"^>>>$", now=0.0).idle(">>> ", 1.0)


def test_a_half_typed_user_line_holds_idleness_until_enter_or_the_grace_ends() -> None:
    gate = IdleGate(0.5, typing_grace=10.0, now=0.0)
    gate.user_input(b"git sta", 0.0)
    assert gate.typing
    assert not gate.idle("$", 5.0)
    assert gate.idle("$", 10.0)  # the grace ended
    gate.user_input(b"tus\r", 11.0)
    assert not gate.typing
    assert gate.idle("$", 11.5)
    gate.user_input(b"oops\x15", 12.0)  # Ctrl-U clears the line
    assert gate.idle("$", 12.5)


def test_arrow_keys_and_terminal_reports_are_not_typing() -> None:
    gate = IdleGate(0.5, now=0.0)
    gate.user_input(b"\x1b[A\x1bOB\x1b[200;5R\x1b[I", 0.0)
    assert not gate.typing
    gate.user_input(b"\x1b[Dx", 1.0)
    assert gate.typing


def test_typing_a_message_ends_the_user_s_half_typed_line() -> None:
    gate = IdleGate(0.5, typing_grace=10.0, now=0.0)
    gate.user_input(b"half", 0.0)
    gate.injected(10.0)
    assert gate.idle("$", 10.5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"prompt": "(unclosed"}, "--prompt '(unclosed' is not a valid regular expression"),
        ({"quiet": 0}, "quiet window must be above 0"),
        ({"typing_grace": -1}, "typing grace must be above 0"),
    ],
)
def test_bad_idle_settings_are_invalid_input(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(error)):
        IdleGate(**kwargs)  # type: ignore[arg-type]


# -- Screen ----------------------------------------------------------------------


def test_the_last_line_is_the_last_non_blank_one_without_escapes_or_trailing_blanks() -> None:
    screen = Screen(40, 6)
    screen.feed(b"\x1b[1;32mwelcome\x1b[0m\r\nresult: 42   \r\n\r\n")
    assert screen.last_line() == "result: 42"
    screen.feed(b"\x1b[34m>\x1b[0m ")
    assert screen.last_line() == ">"
    assert screen.lines() == ["welcome", "result: 42", "", ">"]
    assert screen.lines(2) == ["", ">"]


def test_the_screen_follows_clears_and_carriage_returns() -> None:
    screen = Screen(40, 6)
    screen.feed(b"working 10%\rworking 99%\r\n")
    assert screen.last_line() == "working 99%"
    screen.feed(b"\x1b[2J\x1b[H$ ")
    assert screen.lines() == ["$"]


def test_bracketed_paste_is_tracked_even_when_the_sequence_is_split_across_reads() -> None:
    screen = Screen()
    assert not screen.bracketed_paste
    screen.feed(b"prompt\x1b[?20")
    screen.feed(b"04h> ")
    assert screen.bracketed_paste
    screen.feed(b"\x1b[?2004l")
    assert not screen.bracketed_paste


def test_a_resized_screen_keeps_its_text_and_split_utf8_is_decoded() -> None:
    screen = Screen(20, 4)
    data = "héllo 日本".encode()
    screen.feed(data[:2])
    screen.feed(data[2:])
    screen.resize(30, 8)
    assert (screen.cols, screen.rows) == (30, 8)
    assert screen.last_line() == "héllo 日本"


def test_a_flood_of_output_is_parsed_from_its_tail_keeping_the_paste_switch() -> None:
    screen = Screen(80, 24)
    screen.feed(b"\x1b[?2004h")
    for n in range(40_000):  # about 10 x KEEP_BYTES
        screen.feed(f"line {n}\r\n".encode())
    screen.feed(b"done> ")
    assert screen.bracketed_paste
    assert screen.lines(2) == ["line 39999", "done>"]
    screen.feed(b"\x1b[?2004l" + b"x" * (3 * KEEP_BYTES) + b"\r\n$ ")
    assert not screen.bracketed_paste
    assert screen.last_line() == "$"


def test_the_reset_sequence_undoes_the_modes_a_program_left_on() -> None:
    screen = Screen()
    assert screen.reset_sequence() == b""
    screen.feed(b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[?1000h")
    assert screen.reset_sequence() == b"\x1b[?1000l\x1b[?1049l\x1b[?2004l\x1b[?25h"
    screen.feed(b"\x1b[?1049l\x1b[?25h\x1b[?2004l\x1b[?1000l")
    assert screen.reset_sequence() == b""


def test_the_prompt_line_keeps_the_prompt_s_blank_and_is_empty_while_a_command_runs() -> None:
    screen = Screen(40, 10)
    screen.feed(b"Python\r\n>>> ")
    assert screen.prompt_line() == ">>> "
    screen.feed(b"import time; time.sleep(9)\r\n")  # echoed, now running silently
    assert screen.prompt_line() == ""
    assert screen.last_line() == ">>> import time; time.sleep(9)"
    screen.feed(b"... ")
    assert screen.prompt_line() == "... "
    screen.feed(b"\x1b[?25l\x1b[1;1H")  # a hidden cursor elsewhere: the last line counts
    assert screen.prompt_line() == "..."


def test_prompt_line_reads_lines_captured_elsewhere_with_their_cursor() -> None:
    lines = ["$ ls", "a  b", "$", ""]
    assert prompt_line(lines, 2, 2) == "$ "
    assert prompt_line(lines, 0, 3) == ""
    assert prompt_line(lines, 0, 0) == "$"
    assert prompt_line(lines, 0, 3, cursor_visible=False) == "$"
    assert prompt_line(["", ""], 0, 0) == ""


def test_last_nonblank_reads_lines_captured_elsewhere() -> None:
    assert last_nonblank(["$ ls", "a  b", "$ ", "   ", ""]) == "$"
    assert last_nonblank(["", "  "]) == ""


# -- keys ------------------------------------------------------------------------


def message(relay: Relay, body: str, **kwargs: object) -> Message:
    relay.register("target", pid=None)
    return relay.register("alice", pid=None).send("target", body, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Relay.open(dir=tmp_path / "relay") as opened:
        yield opened


def test_a_one_line_message_renders_as_one_line_with_how_to_reply(relay: Relay) -> None:
    msg = message(relay, "please rebase", subject="PR 7", priority="urgent")
    assert render(msg) == (
        f"[relaybus #{msg.id} urgent from alice · PR 7] please rebase"
        f' (reply: relaybus reply {msg.id} "...")'
    )
    assert f"relaybus --as 'my agent' reply {msg.id}" in render(msg, reply_as="my agent")


def test_a_multi_line_message_renders_header_body_and_hint_on_their_own_lines(
    relay: Relay,
) -> None:
    msg = message(relay, "line 1\r\n\tline 2\n", claimable=True)
    lines = render(msg).split("\n")
    assert lines[0] == f"[relaybus #{msg.id} from alice]"
    assert lines[1:3] == ["line 1", "    line 2"]
    assert lines[3].startswith(f"(task #{msg.task_id}: relaybus claim {msg.task_id}; reply:")


def test_keystrokes_paste_the_text_when_the_program_enabled_bracketed_paste() -> None:
    pieces = keystrokes("one\ntwo", bracketed=True)
    assert pieces == [PASTE_START + b"one\rtwo" + PASTE_END, ENTER]


def test_keystrokes_type_line_by_line_otherwise_skipping_blank_lines() -> None:
    assert keystrokes("one\n\n two\n", bracketed=False) == [b"one", ENTER, b" two", ENTER]
    assert keystrokes("", bracketed=False) == [ENTER]


def test_keystrokes_come_in_chunks_that_never_split_a_character() -> None:
    text = "é" * 10 + "x" * 5  # 25 bytes
    pieces = keystrokes(text, bracketed=False, chunk=4)
    assert pieces[-1] == ENTER
    assert all(len(p) <= 4 for p in pieces)
    assert b"".join(pieces[:-1]).decode("utf-8") == text


def test_a_message_cannot_end_the_paste_or_send_control_keys() -> None:
    hostile = "hi\x1b[201~\x03rm -rf /\r\x9b2J\x07"
    pieces = keystrokes(hostile, bracketed=True)
    typed = b"".join(pieces)
    assert typed.count(PASTE_END) == 1 and typed.endswith(PASTE_END + ENTER)
    assert typed == PASTE_START + b"hi[201~rm -rf /\r2J" + PASTE_END + ENTER


def test_a_raw_message_is_its_body_alone_and_a_block_ends_with_a_blank_line(
    relay: Relay,
) -> None:
    assert raw_text(message(relay, "print(6*7)\n", subject="ignored")) == "print(6*7)"
    block = message(relay, "for i in range(2):\n\tprint(i)")
    assert raw_text(block) == "for i in range(2):\n    print(i)\n"
    assert raw_text(message(relay, "for i in x: print(i)\n\n")) == "for i in x: print(i)\n"
    assert raw_text(message(relay, "a = 1\n\nb = 2\n\n")) == "a = 1\n\nb = 2\n"


def test_raw_keystrokes_type_like_a_person_or_paste_a_block_with_its_line_break() -> None:
    assert raw_keystrokes("print(6*7)", bracketed=True) == [b"print(6*7)", ENTER]
    assert raw_keystrokes("a\n\nb\n", bracketed=False) == [b"a", ENTER, ENTER, b"b", ENTER, ENTER]
    pasted = raw_keystrokes("for x in y:\n  f(x)\n", bracketed=True)
    assert pasted == [PASTE_START + b"for x in y:\r  f(x)\r" + PASTE_END, ENTER]
    hostile = b"".join(raw_keystrokes("hi\x1b[201~\x03\nrm", bracketed=True))
    assert hostile == PASTE_START + b"hi[201~\rrm" + PASTE_END + ENTER


def test_the_format_decides_what_is_typed_for_a_message(relay: Relay) -> None:
    msg = message(relay, "print(6*7)")
    framed = message_keystrokes(msg, "framed", bracketed=False)
    assert framed == keystrokes(render(msg), bracketed=False)
    assert message_keystrokes(msg, MessageFormat.RAW, bracketed=False) == [b"print(6*7)", ENTER]
    with pytest.raises(InvalidInput, match="framed or raw, not 'json'"):
        parse_format("json")


# -- Mailbox ---------------------------------------------------------------------


class Wakes:
    """A ``wake`` callback the test can wait on."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()

    def wait(self) -> None:
        assert self.event.wait(HUNG), "never woken"
        self.event.clear()


@pytest.fixture
def agents(relay: Relay) -> tuple[AgentHandle, AgentHandle]:
    """(alice the sender, bob the agent whose mailbox is tested)."""
    return relay.register("alice", pid=None), relay.register("bob", pid=None)


def ids(*messages: Message | None) -> list[int | None]:
    return [None if m is None else m.id for m in messages]


def receipts(relay: Relay, *messages: Message) -> list[tuple[DeliveryState, Via | None]]:
    return [(d.state, d.via) for m in messages for d in relay.deliveries(m.id)]


def test_the_mailbox_starts_with_the_unread_mail_oldest_first(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    sent = [alice.send("bob", f"m{n}") for n in range(3)]
    bob.mark_read([sent[0].id])
    box = Mailbox(bob, Wakes(), poll_seconds=POLL)
    box.start()
    try:
        assert box.pending() == 2
        found = [box.next(idle=True) for _ in range(3)]
        assert ids(*found) == ids(sent[1], sent[2], None)
    finally:
        box.stop(join=True)


def test_a_busy_program_gets_only_urgent_mail_and_steer_mode_gets_everything(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    normal = alice.send("bob", "normal")
    urgent = alice.send("bob", "urgent", priority="urgent")
    box = Mailbox(bob, Wakes(), poll_seconds=POLL)
    box.start()
    try:
        assert ids(box.next(idle=False)) == ids(urgent)  # ahead of the older normal one
        assert box.next(idle=False) is None
        box.mode = InjectMode.STEER
        assert ids(box.next(idle=False)) == ids(normal)
    finally:
        box.stop(join=True)


def test_typed_messages_are_delivered_and_read_at_the_next_idle_boundary(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    first, second = alice.send("bob", "one"), alice.send("bob", "two")
    box = Mailbox(bob, Wakes(), via=Via.TMUX, poll_seconds=POLL)
    box.start()
    try:
        taken = box.next(idle=True)
        assert taken is not None and taken.id == first.id
        box.typed(taken)
        assert box.worker.flush(HUNG)
        assert receipts(relay, first, second) == [
            (DeliveryState.DELIVERED, Via.TMUX),
            (DeliveryState.QUEUED, None),
        ]
        assert box.settled() == [first.id]
        assert box.settled() == []
        assert box.worker.flush(HUNG)
        assert receipts(relay, first) == [(DeliveryState.READ, Via.TMUX)]
        assert box.unread() == 1
    finally:
        box.stop(join=True)


def test_mail_that_arrives_later_is_queued_and_wakes_the_loop(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    wakes = Wakes()
    box = Mailbox(bob, wakes, poll_seconds=POLL)
    box.start()
    try:
        assert box.next(idle=True) is None
        later = alice.send("bob", "later")
        wakes.wait()
        assert ids(box.next(idle=True)) == ids(later)
        assert box.next(idle=True) is None  # once per program run
    finally:
        box.stop(join=True)


def test_a_restart_types_again_what_was_typed_or_in_flight_but_not_read(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    sent = [alice.send("bob", f"m{n}") for n in range(4)]
    box = Mailbox(bob, Wakes(), poll_seconds=POLL)
    box.start()
    try:
        read, typed, in_flight = (box.next(idle=True) for _ in range(3))
        assert read is not None and typed is not None and in_flight is not None
        box.typed(read)
        box.settled()
        box.typed(typed)
        box.restart()  # the program crashed with `typed` unread, `in_flight` half written
        order = [box.next(idle=True) for _ in range(4)]
        assert ids(*order) == ids(sent[1], sent[2], sent[3], None)
        assert receipts(relay, sent[0]) == [(DeliveryState.READ, Via.PTY)]
    finally:
        box.stop(join=True)


def test_mail_read_elsewhere_meanwhile_is_not_typed_again_after_a_restart(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    alice, bob = agents
    sent = [alice.send("bob", f"m{n}") for n in range(2)]
    box = Mailbox(bob, Wakes(), poll_seconds=POLL)
    box.start()
    try:
        bob.mark_read([sent[0].id])  # e.g. `relaybus inbox` run inside the program
        box.restart()
        assert ids(box.next(idle=True), box.next(idle=True)) == ids(sent[1], None)
    finally:
        box.stop(join=True)


def test_an_unknown_injection_mode_is_invalid_input(
    agents: tuple[AgentHandle, AgentHandle],
) -> None:
    with pytest.raises(InvalidInput, match="wait or steer"):
        Mailbox(agents[1], Wakes(), "later")


# -- Presence and Worker -----------------------------------------------------------


def status_becomes(relay: Relay, agent_id: str, status: AgentStatus) -> None:
    since = 0
    deadline = HUNG
    while relay.get_agent(agent_id).status is not status:
        events = relay.wait_events(deadline, since=since, kinds=["agent."])
        assert events, f"{agent_id} never became {status}"
        since = events[-1].id


def test_presence_reports_busy_and_idle_and_marks_the_agent_offline_at_the_end(
    relay: Relay, agents: tuple[AgentHandle, AgentHandle]
) -> None:
    bob = agents[1]
    presence = Presence(bob, heartbeat=60.0, min_interval=0.01)
    presence.start()
    try:
        presence.report(AgentStatus.BUSY)
        status_becomes(relay, "bob", AgentStatus.BUSY)
        presence.report("idle")
        status_becomes(relay, "bob", AgentStatus.IDLE)
    finally:
        presence.stop(offline=True)
    assert presence.reported is AgentStatus.IDLE  # the thread has ended: no race
    assert relay.get_agent("bob").status is AgentStatus.OFFLINE


def test_the_worker_runs_calls_in_order_and_retries_passing_failures() -> None:
    worker = Worker(retry_delays=(0.0, 0.0))
    done: list[str] = []
    attempts = {"n": 0}

    def flaky() -> None:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise StoreError("relay unreachable")
        done.append("flaky")

    def refused() -> None:
        attempts["n"] += 10
        raise InvalidInput("no such thing")

    worker.submit(lambda: done.append("first"), "first")
    worker.submit(flaky, "flaky")
    worker.submit(refused, "refused")  # permanent: tried once
    worker.submit(lambda: done.append("last"), "last")
    assert worker.close(HUNG)
    assert done == ["first", "flaky", "last"]
    assert attempts["n"] == 13
    worker.submit(lambda: done.append("too late"), "too late")
    assert done == ["first", "flaky", "last"]
