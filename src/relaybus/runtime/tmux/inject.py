"""Typing text into a tmux pane, and whether the pane can take it now.

A one-line text is typed with ``send-keys -l`` (literal: no key-name lookup),
in chunks of at most :data:`~relaybus.runtime.keys.CHUNK_BYTES`,
then ``send-keys Enter``. A multi-line text is pasted with ``paste-buffer -p``
from a private buffer, then Enter: tmux then wraps it in bracketed-paste
markers exactly when the program in the pane asked for them (tmux tracks the
pane's modes; no format exposes that mode, and output seen since the adapter
attached may not include the program's ``ESC[?2004h``), so a multi-line message
is one input to an agent CLI and line by line to a plain line reader.

A ``raw`` message (see :mod:`relaybus.runtime.keys`) is typed the
same way, from :func:`~relaybus.runtime.keys.raw_text`: its
closing blank line is kept, so the paste ends with a line break (Python's REPL
runs a pasted block at the Enter; unbracketed, it is one more empty input).

Every command of one message goes out in one write (one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import CHUNK_BYTES, ENTER, clean, keystrokes
from ..screen import prompt_line
from .control import CommandFailed, ControlClient

#: ``list-panes`` format of :class:`PaneState`: modes, then the cursor.
STATE_FORMAT = (
    "#{pane_in_mode} #{pane_input_off} #{pane_dead} #{cursor_x} #{cursor_y} #{cursor_flag}"
)


@dataclass(frozen=True)
class PaneState:
    """What decides whether a pane may be typed into now.

    Attributes:
        in_mode: the pane shows copy mode (or another mode): keys would be mode
            commands, not text for the program.
        input_off: input to the pane is disabled (``select-pane -d``).
        dead: the program exited and the pane remains (``remain-on-exit``).
        last_line: the prompt line of the screen (the last non-blank line, up to
            the cursor when it is there; see
            :func:`~relaybus.runtime.screen.prompt_line`; ``""``
            when not asked for).
    """

    in_mode: bool
    input_off: bool
    dead: bool
    last_line: str = ""

    @property
    def ready(self) -> bool:
        """Whether keys sent now would reach the program."""
        return not (self.in_mode or self.input_off or self.dead)


def only(pane_id: str) -> str:
    """A ``list-panes -f`` filter true for pane ``pane_id`` alone.

    ``list-panes -a -f`` is how to ask about one pane: ``display-message -t``
    answers for some other pane when the target is gone.
    """
    return f"#{{==:#{{pane_id}},{pane_id}}}"


def pane_state(control: ControlClient, pane_id: str, *, screen: bool) -> PaneState:
    """The pane's modes, and with ``screen`` its prompt line (one round trip).

    Raises:
        CommandFailed: the pane is gone. ControlClosed, TmuxError: see
            :meth:`ControlClient.command`.
    """
    commands = [["list-panes", "-a", "-f", only(pane_id), "-F", STATE_FORMAT]]
    if screen:
        # Not -J: the rows must be the screen's, as the cursor's row counts them.
        commands.append(["capture-pane", "-p", "-t", pane_id])
    replies = control.command_all(commands)
    if not replies[0]:
        raise CommandFailed(f"can't find pane: {pane_id}")
    flags = (replies[0][0].split() + ["0"] * 6)[:6]
    in_mode, input_off, dead = (f == "1" for f in flags[:3])
    line = ""
    if screen:
        x, y = (int(f) if f.isdigit() else 0 for f in flags[3:5])
        line = prompt_line(replies[1], x, y, cursor_visible=flags[5] != "0")
    return PaneState(in_mode, input_off, dead, line)


def type_commands(
    pane_id: str, text: str, *, buffer: str, chunk: int = CHUNK_BYTES, raw: bool = False
) -> list[list[str]]:
    """The tmux commands that type ``text`` into ``pane_id`` and press Enter.

    ``buffer`` names the paste buffer a multi-line text goes through (deleted by
    the paste). Text goes through :func:`~relaybus.runtime.keys.clean`;
    line breaks around it are dropped, but with ``raw`` (a
    :func:`~relaybus.runtime.keys.raw_text`) the closing ones are kept.
    """
    text = clean(text).lstrip("\n") if raw else clean(text).strip("\n")
    if "\n" in text:
        return [
            ["set-buffer", "-b", buffer, "--", text],
            ["paste-buffer", "-p", "-d", "-b", buffer, "-t", pane_id],
            ["send-keys", "-t", pane_id, "Enter"],
        ]
    commands: list[list[str]] = []
    for piece in keystrokes(text, bracketed=False, chunk=chunk):
        if piece == ENTER:
            commands.append(["send-keys", "-t", pane_id, "Enter"])
        else:
            commands.append(["send-keys", "-t", pane_id, "-l", "--", piece.decode("utf-8")])
    return commands


def type_text(
    control: ControlClient, pane_id: str, text: str, *, buffer: str, raw: bool = False
) -> None:
    """Type ``text`` into the pane and press Enter (see the module docstring);
    ``raw``: ``text`` is a raw message's (see :func:`type_commands`).

    Raises:
        CommandFailed: the pane is gone. ControlClosed, TmuxError: see
            :meth:`ControlClient.command_all`.
    """
    control.command_all(type_commands(pane_id, text, buffer=buffer, raw=raw))
