"""Typing text into a tmux pane, and whether the pane can take it now.

A one-line text is typed with ``send-keys -l`` (literal: no key-name lookup),
in chunks of at most :data:`~relaybus.integrations.runtime.keys.CHUNK_BYTES`,
then ``send-keys Enter``. A multi-line text is pasted with ``paste-buffer -p``
from a private buffer, then Enter: tmux then wraps it in bracketed-paste
markers exactly when the program in the pane asked for them (tmux tracks the
pane's modes; no format exposes that mode, and output seen since the adapter
attached may not include the program's ``ESC[?2004h``), so a multi-line message
is one input to an agent CLI and line by line to a plain line reader.

Every command of one message goes out in one write (one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.keys import CHUNK_BYTES, ENTER, clean, keystrokes
from .control import CommandFailed, ControlClient
from .server import last_line

#: ``display-message`` format of :class:`PaneState`.
STATE_FORMAT = "#{pane_in_mode} #{pane_input_off} #{pane_dead}"


@dataclass(frozen=True)
class PaneState:
    """What decides whether a pane may be typed into now.

    Attributes:
        in_mode: the pane shows copy mode (or another mode): keys would be mode
            commands, not text for the program.
        input_off: input to the pane is disabled (``select-pane -d``).
        dead: the program exited and the pane remains (``remain-on-exit``).
        last_line: the last non-blank screen line (``""`` when not asked for).
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
    """The pane's modes, and with ``screen`` its last non-blank line (one round trip).

    Raises:
        CommandFailed: the pane is gone. ControlClosed, TmuxError: see
            :meth:`ControlClient.command`.
    """
    commands = [["list-panes", "-a", "-f", only(pane_id), "-F", STATE_FORMAT]]
    if screen:
        commands.append(["capture-pane", "-p", "-J", "-t", pane_id])
    replies = control.command_all(commands)
    if not replies[0]:
        raise CommandFailed(f"can't find pane: {pane_id}")
    flags = replies[0][0].split()
    in_mode, input_off, dead = (f == "1" for f in (flags + ["0", "0", "0"])[:3])
    return PaneState(in_mode, input_off, dead, last_line(replies[1]) if screen else "")


def type_commands(
    pane_id: str, text: str, *, buffer: str, chunk: int = CHUNK_BYTES
) -> list[list[str]]:
    """The tmux commands that type ``text`` into ``pane_id`` and press Enter.

    ``buffer`` names the paste buffer a multi-line text goes through (deleted by
    the paste). Text goes through :func:`~relaybus.integrations.runtime.keys.clean`.
    """
    text = clean(text).strip("\n")
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


def type_text(control: ControlClient, pane_id: str, text: str, *, buffer: str) -> None:
    """Type ``text`` into the pane and press Enter (see the module docstring).

    Raises:
        CommandFailed: the pane is gone. ControlClosed, TmuxError: see
            :meth:`ControlClient.command_all`.
    """
    control.command_all(type_commands(pane_id, text, buffer=buffer))
