"""What the runtime types for a message, and as which keystrokes.

A message is typed in one of two :class:`MessageFormat` s:

- ``framed`` (the default, for agent CLIs): :func:`render` turns a message into
  the text a person (or an agent CLI) reads in their terminal: one header with
  the message id, sender and subject, the body, and how to answer with the CLI.
  :func:`keystrokes` turns that text into the bytes written to the program's
  terminal: one bracketed paste when the program turned bracketed paste on (so a
  multi-line message is one input), else line by line; Enter at the end either way.
- ``raw`` (for REPLs, shells, plain programs): the body alone, as a person would
  type it (:func:`raw_text`, :func:`raw_keystrokes`): a one-line body is typed
  and Enter pressed; a multi-line body ends with a blank line (which closes a
  Python block and is an empty input elsewhere) and goes in as one bracketed
  paste when the program turned that on, else line by line, blank lines included.

Several messages can go in as one input (:func:`batch_keystrokes`, ``relaybus
run --batch``): one turn of an agent CLI instead of one turn per message.

Message text comes from other agents, so :func:`clean` removes every control
character but the line break first: a body cannot end the paste early, move
the cursor or send Ctrl-C.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from enum import StrEnum

from ..models import Message, Priority, parse_choice

#: The Enter key (a terminal sends CR).
ENTER = b"\r"
#: Bracketed paste markers (xterm): what a terminal wraps pasted text in.
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
#: Stands for a line break where a batch of messages is typed as one line.
LINE_BREAK = " \u23ce "
#: Default largest text chunk, bytes: small enough for one ``tmux send-keys -l``
#: argument and one non-blocking write to a PTY.
CHUNK_BYTES = 512

# C0 controls but LF, DEL, and C1 controls (U+0080-U+009F: 8-bit CSI and friends).
_CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")


class MessageFormat(StrEnum):
    """How a message is typed: ``framed`` (header, body, how to reply: for agent
    CLIs, so the model knows who wrote and how to answer) or ``raw`` (the body
    alone, as a person would type it: for REPLs, shells and plain programs)."""

    FRAMED = "framed"
    RAW = "raw"


def parse_format(value: MessageFormat | str) -> MessageFormat:
    """``"framed"`` / ``"raw"`` as a :class:`MessageFormat`; InvalidInput for anything else."""
    return parse_choice(MessageFormat, "message format", value)


def clean(text: str) -> str:
    """``text`` safe to type: CRLF and CR become LF, a tab four spaces, and every
    other control character is removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROLS.sub("", text)


def render(message: Message, *, reply_as: str | None = None) -> str:
    """The text typed for ``message``::

        [relaybus #12 from alice · Review PR 7] the body, as sent
        (reply: relaybus reply 12 "...")

    The header names the priority when it is high or urgent, the channel when
    there is one, and the subject; a claimable message adds ``relaybus claim
    TASK``; a pair's message (``meta["pair"]``) shows ``[pair ID]`` and the
    ``relaybus pair`` command that answers it. A one-line body gives one line
    (the answer hint on the same line), which a line-oriented program takes as
    one input. ``reply_as`` adds ``--as NAME`` to the commands, for a program
    whose environment does not name the agent (a tmux pane); under ``relaybus
    run`` the program has ``RELAYBUS_AGENT`` already.
    """
    parts = [f"relaybus #{message.id}"]
    if message.priority in (Priority.HIGH, Priority.URGENT):
        parts.append(message.priority.value)
    parts.append(f"from {message.sender}")
    pair = message.meta.get("pair")
    pair = pair if isinstance(pair, int) and not isinstance(pair, bool) else None
    if pair is not None:
        parts.append(f"[pair {pair}]")
    head = " ".join(parts)
    if message.channel:
        head += f" on #{message.channel}"
    if message.subject:
        head += f" · {clean(message.subject).replace(chr(10), ' ')}"
    who = f"--as {shlex.quote(reply_as)} " if reply_as else ""
    hint = f'(reply: relaybus {who}reply {message.id} "...")'
    if message.task_id is not None:
        hint = f"(task #{message.task_id}: relaybus {who}claim {message.task_id}; " + hint[1:]
    if pair is not None:  # a pair's messages are answered on the pair
        hint = f'(pair: relaybus {who}pair send {pair} "...")'
        if message.meta.get("pair_step") == "invited":
            hint = f"(relaybus {who}pair accept {pair}, or: relaybus {who}pair reject {pair})"
    body = clean(message.body).strip("\n")
    if "\n" in body:
        return f"[{head}]\n{body}\n{hint}"
    return f"[{head}] {body} {hint}"


def _chunks(text: str, size: int) -> list[bytes]:
    """``text`` as UTF-8 in pieces of at most ``size`` bytes, never splitting a character."""
    out: list[bytes] = []
    piece: list[str] = []
    used = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if piece and used + width > size:
            out.append("".join(piece).encode("utf-8"))
            piece, used = [], 0
        piece.append(char)
        used += width
    if piece:
        out.append("".join(piece).encode("utf-8"))
    return out


def keystrokes(text: str, *, bracketed: bool, chunk: int = CHUNK_BYTES) -> list[bytes]:
    """The bytes to write for ``text``, in order, as a list of pieces.

    ``bracketed``: one paste, ``PASTE_START`` + text (line breaks as CR, as a
    terminal pastes them) + ``PASTE_END``, then :data:`ENTER`. Otherwise each
    non-blank line followed by :data:`ENTER` (a line-oriented program takes each
    line as one input; blank lines would be empty inputs, so they are left out).

    Contract for a writer: the last piece is always :data:`ENTER`; in line mode
    every Enter is a piece of its own and text pieces hold no CR or LF; text
    pieces hold at most ``chunk`` bytes of text (a paste's first and last piece
    also carry the 6-byte markers). Text goes through :func:`clean` first.
    """
    text = clean(text)
    if bracketed:
        body = _chunks(text.replace("\n", "\r"), chunk) or [b""]
        body[0] = PASTE_START + body[0]
        body[-1] = body[-1] + PASTE_END
        return [*body, ENTER]
    pieces: list[bytes] = []
    for line in text.split("\n"):
        if line.strip():
            pieces.extend(_chunks(line, chunk))
            pieces.append(ENTER)
    return pieces or [ENTER]


def raw_text(message: Message) -> str:
    """The text typed for ``message`` in the ``raw`` format: its body through
    :func:`clean`, without its own final line break (Enter ends the last line);
    a body of more than one line then ends with a blank line (one is added if
    the sender did not end it so), which closes a Python block (``for``/``def``
    typed at ``>>>``) and is an empty input to a shell. So a one-line compound
    statement (``for i in x: print(i)``) closes with ``"...\\n\\n"``."""
    text = clean(message.body)
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text and not text.endswith("\n"):
        text += "\n"
    return text


def raw_keystrokes(text: str, *, bracketed: bool, chunk: int = CHUNK_BYTES) -> list[bytes]:
    """The bytes that type ``text`` (see :func:`raw_text`) as a person would, in pieces.

    One line: its text, then :data:`ENTER`, never a paste. Several lines and
    ``bracketed``: one paste of all of them, line breaks as CR (the closing
    blank line of :func:`raw_text` makes the paste end with a line break:
    Python's REPL then runs the block at the Enter), then :data:`ENTER`.
    Otherwise each line followed by :data:`ENTER`, blank lines as a bare Enter
    (the closing blank line is the last one).

    The contract of :func:`keystrokes` holds: the last piece is :data:`ENTER`;
    in line mode every Enter is a piece of its own and text pieces hold no CR or
    LF; text pieces hold at most ``chunk`` bytes of text.
    """
    text = clean(text)
    lines = text.split("\n")
    if bracketed and len(lines) > 1:
        body = _chunks(text.replace("\n", "\r"), chunk)
        body[0] = PASTE_START + body[0]
        body[-1] = body[-1] + PASTE_END
        return [*body, ENTER]
    pieces: list[bytes] = []
    for line in lines:
        pieces.extend(_chunks(line, chunk))
        pieces.append(ENTER)
    return pieces


def typed_text(
    message: Message, message_format: MessageFormat | str, *, reply_as: str | None = None
) -> str:
    """The text typed for ``message`` in ``message_format``: :func:`render` (framed)
    or :func:`raw_text` (raw)."""
    if parse_format(message_format) is MessageFormat.RAW:
        return raw_text(message)
    return render(message, reply_as=reply_as)


def message_keystrokes(
    message: Message,
    message_format: MessageFormat | str,
    *,
    bracketed: bool,
    reply_as: str | None = None,
) -> list[bytes]:
    """The bytes that type ``message`` in ``message_format`` into a program whose
    terminal is in bracketed-paste mode or not (see the module docstring)."""
    text = typed_text(message, message_format, reply_as=reply_as)
    if parse_format(message_format) is MessageFormat.RAW:
        return raw_keystrokes(text, bracketed=bracketed)
    return keystrokes(text, bracketed=bracketed)


def batch_text(
    messages: Sequence[Message],
    message_format: MessageFormat | str,
    *,
    one_line: bool = False,
    reply_as: str | None = None,
) -> str:
    """The text typed for several messages as one input, oldest first.

    ``framed``: a header ``[relaybus: N messages]``, then each message's
    :func:`render`, a blank line between them; ``one_line`` puts it all on one
    line instead (line breaks shown as :data:`LINE_BREAK`), for a program without
    bracketed paste, so one Enter ends it. ``raw``: the bodies (:func:`raw_text`),
    one after the other.
    """
    if parse_format(message_format) is MessageFormat.RAW:
        return "\n".join(raw_text(m) for m in messages)
    parts = [f"[relaybus: {len(messages)} messages]"]
    parts += [render(m, reply_as=reply_as) for m in messages]
    if one_line:
        return " ".join(clean(p).replace("\n", LINE_BREAK) for p in parts)
    return "\n\n".join(parts)


def batch_keystrokes(
    messages: Sequence[Message],
    message_format: MessageFormat | str,
    *,
    bracketed: bool,
    reply_as: str | None = None,
) -> list[bytes]:
    """The bytes that type ``messages`` as one input (see :func:`batch_text`): one
    bracketed paste and Enter when the program turned bracketed paste on, else (framed)
    one line and Enter. One message is typed as :func:`message_keystrokes` types it.
    The contract of :func:`keystrokes` holds.

    Raises:
        ValueError: no messages.
    """
    if not messages:
        raise ValueError("no messages to type")
    if len(messages) == 1:
        return message_keystrokes(
            messages[0], message_format, bracketed=bracketed, reply_as=reply_as
        )
    if parse_format(message_format) is MessageFormat.RAW:
        return raw_keystrokes(batch_text(messages, message_format), bracketed=bracketed)
    text = batch_text(messages, message_format, one_line=not bracketed, reply_as=reply_as)
    return keystrokes(text, bracketed=bracketed)
