"""The agent runtime: what runs an agent program and types its mail in.

- :mod:`.pty`: ``relaybus run``'s PTY runner (wraps any CLI in a terminal).
- :mod:`.tmux`: the tmux adapter (``relaybus tmux``, an agent in a pane).

This package's own modules are their shared core: typing relay messages into an
interactive program when it is idle, with delivery receipts and presence.

- :mod:`.idle`: :class:`IdleGate`, when a program is idle (quiet window, prompt).
- :mod:`.screen`: :class:`Screen`, the program's screen (pyte), its last line, its
  prompt line and whether it turned on bracketed paste.
- :mod:`.keys`: the :class:`MessageFormat` (``framed`` or ``raw``), :func:`render`
  (the framed text typed for a message), :func:`raw_text` (the raw one) and
  :func:`message_keystrokes` (the bytes: bracketed paste or line by line, then Enter);
  :func:`batch_keystrokes`, several messages as one input.
- :mod:`.mailbox`: :class:`Mailbox`, the in-order queue of unread messages that
  follows the inbox and sends the receipts (queued → delivered → read).
- :mod:`.presence`: :class:`Presence`, heartbeats, busy/idle, offline at the end.
- :mod:`.worker`: :class:`Worker`, relay calls off the terminal loop's thread.

A terminal loop uses them like this (the PTY runner, :mod:`relaybus.runtime.pty`)::

    gate, screen = IdleGate(quiet, prompt), Screen(cols, rows)
    message_format = parse_format("framed")     # or "raw"
    mailbox = Mailbox(handle, wake, mode, via="pty"); mailbox.start()
    presence = Presence(handle); presence.start()
    # on program output:   screen.feed(data); gate.activity()
    # on user keystrokes:  gate.user_input(data)
    # each turn of the loop:
    idle = gate.idle(screen.prompt_line())
    if idle and not was_idle: presence.report("idle"); mailbox.settled()
    if not idle and was_idle: presence.report("busy")
    if (message := mailbox.next(idle)) is not None:
        write(b"".join(message_keystrokes(message, message_format,
                                          bracketed=screen.bracketed_paste)))
        gate.injected()
        mailbox.typed(message)          # once every byte, Enter included, was written
    # sleep until input, a wake() or gate.deadline(), never on a short timer
    # at the end: mailbox.stop(); presence.stop()
"""

from __future__ import annotations

from .idle import QUIET_SECONDS, IdleGate, compile_prompt
from .keys import (
    ENTER,
    PASTE_END,
    PASTE_START,
    MessageFormat,
    batch_keystrokes,
    clean,
    keystrokes,
    message_keystrokes,
    parse_format,
    raw_keystrokes,
    raw_text,
    render,
    typed_text,
)
from .mailbox import InjectMode, Mailbox, parse_mode
from .presence import Presence
from .screen import Screen, last_nonblank, prompt_line
from .worker import Worker

__all__ = [
    "ENTER",
    "PASTE_END",
    "PASTE_START",
    "QUIET_SECONDS",
    "IdleGate",
    "InjectMode",
    "Mailbox",
    "MessageFormat",
    "Presence",
    "Screen",
    "Worker",
    "batch_keystrokes",
    "clean",
    "compile_prompt",
    "keystrokes",
    "last_nonblank",
    "message_keystrokes",
    "parse_format",
    "parse_mode",
    "prompt_line",
    "raw_keystrokes",
    "raw_text",
    "render",
    "typed_text",
]
