"""What a terminal program shows: a VT100 screen emulated with pyte.

The runtime needs two facts about a program's screen: the last non-blank line
(to match a prompt pattern, see :mod:`.idle`) and whether the program turned on
bracketed paste (``ESC[?2004h``), which decides how a message is typed (see
:mod:`.keys`). pyte parses the escape sequences, including ones split across
reads, so this module never parses terminal output itself.

pyte is slow (a few hundred KB/s), and a program may print megabytes, so
:meth:`Screen.feed` only keeps the bytes; they are parsed when the screen is
looked at, and of a flood only the last :data:`KEEP_BYTES` are (enough to
redraw any screen many times over), with the bracketed-paste switches of the
rest applied first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyte

#: pyte keeps DEC private modes in ``Screen.mode`` shifted left by 5 bits.
_BRACKETED_PASTE = 2004 << 5
#: Of output not looked at yet, the most kept for parsing, bytes.
KEEP_BYTES = 128 * 1024
_PASTE_SWITCH = re.compile(rb"\x1b\[\?2004([hl])")
#: DEC private modes a program may turn on and, if it dies, leave on in the user's
#: terminal: cursor keys, mouse and focus reports, alternate screen, bracketed paste.
LEFTOVER_MODES = (1, 47, 1000, 1002, 1003, 1004, 1005, 1006, 1015, 1047, 1049, 2004)
_CURSOR_VISIBLE = 25 << 5


def last_nonblank(lines: Sequence[str]) -> str:
    """The last line of ``lines`` that is not blank, trailing blanks removed;
    ``""`` if all are blank. (For screens read some other way, e.g. ``tmux
    capture-pane``.)"""
    for line in reversed(lines):
        text = line.rstrip()
        if text:
            return text
    return ""


def prompt_line(
    lines: Sequence[str], cursor_x: int, cursor_y: int, *, cursor_visible: bool = True
) -> str:
    """The prompt line of a screen of ``lines`` (top to bottom) whose cursor is at
    column ``cursor_x``, row ``cursor_y`` (0-based): see :meth:`Screen.prompt_line`.
    A hidden cursor (a full-screen program drawing its own) is ignored: then it
    is the last non-blank line, trailing blanks removed."""
    row = len(lines) - 1
    while row >= 0 and not lines[row].strip():
        row -= 1
    if row < 0:
        return ""
    if not cursor_visible:
        return lines[row].rstrip()
    if cursor_y > row:
        return ""
    text = lines[row].rstrip()
    if cursor_y == row and cursor_x > len(text):
        text = lines[row][:cursor_x].ljust(cursor_x)
    return text


class Screen:
    """A program's screen, fed with the bytes it writes to its terminal.

    Args:
        cols: width in character cells (> 0).
        rows: height in lines (> 0).

    Not thread-safe: one loop feeds it.
    """

    def __init__(self, cols: int = 80, rows: int = 24) -> None:
        self._screen = pyte.Screen(max(cols, 1), max(rows, 1))
        self._stream = pyte.ByteStream(self._screen)
        self._pending = bytearray()
        self._paste_switch: bytes | None = None  # the last switch in dropped output
        self._dropped = False

    @property
    def cols(self) -> int:
        """Width in cells."""
        return int(self._screen.columns)

    @property
    def rows(self) -> int:
        """Height in lines."""
        return int(self._screen.lines)

    def feed(self, data: bytes) -> None:
        """Take output of the program (any chunking; UTF-8 and escape sequences
        may be split across calls). Cheap: parsing waits until the screen is read."""
        self._pending += data
        if len(self._pending) > 2 * KEEP_BYTES:
            self._drop(len(self._pending) - KEEP_BYTES)

    def _drop(self, count: int) -> None:
        """Forget the oldest ``count`` pending bytes, up to a line break (so no escape
        sequence is cut), remembering their last bracketed-paste switch."""
        cut = self._pending.find(b"\n", count)
        cut = count if cut < 0 else cut + 1
        switches = _PASTE_SWITCH.findall(self._pending, 0, cut)
        if switches:
            self._paste_switch = switches[-1]
        del self._pending[:cut]
        self._dropped = True

    def _parse(self) -> None:
        if self._paste_switch is not None:
            if self._paste_switch == b"h":
                self._screen.set_mode(2004, private=True)
            else:
                self._screen.reset_mode(2004, private=True)
            self._paste_switch = None
        if self._dropped:
            # What is kept starts a line (see _drop); the dropped part's carriage
            # return went with it.
            self._stream.feed(b"\r\n")
            self._dropped = False
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self._stream.feed(data)

    def resize(self, cols: int, rows: int) -> None:
        """The terminal changed size (keeps what fits)."""
        self._parse()
        self._screen.resize(max(rows, 1), max(cols, 1))

    def lines(self, n: int | None = None) -> list[str]:
        """The screen's lines top to bottom with trailing blanks removed and the
        blank lines below the last text dropped; the last ``n`` of them if given."""
        self._parse()
        shown = [line.rstrip() for line in self._screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return shown if n is None else shown[-n:] if n > 0 else []

    def last_line(self) -> str:
        """The last non-blank line, trailing blanks removed (``""`` on a blank screen)."""
        self._parse()
        return last_nonblank(self._screen.display)

    def prompt_line(self) -> str:
        """The line a prompt pattern is matched against (see :class:`.idle.IdleGate`):
        the last non-blank line, trailing blanks removed, but kept up to the cursor
        when the cursor is on it (a prompt like ``>>> `` keeps its space); ``""``
        when the cursor sits on a blank line below all text (the program moved on
        to a new line, so no prompt is showing: a command running silently after
        its echoed ``>>> command`` line). A hidden cursor is ignored."""
        self._parse()
        cursor = self._screen.cursor
        return prompt_line(
            self._screen.display, cursor.x, cursor.y, cursor_visible=not cursor.hidden
        )

    @property
    def bracketed_paste(self) -> bool:
        """Whether the program turned bracketed paste on (``ESC[?2004h``) and not
        off again (``ESC[?2004l``)."""
        self._parse()
        return _BRACKETED_PASTE in self._screen.mode

    def reset_sequence(self) -> bytes:
        """Escape sequences that undo what the program turned on in its terminal
        and left on (see :data:`LEFTOVER_MODES`; a hidden cursor is shown again):
        written to the user's terminal after a program exits, so a crashed
        full-screen program does not leave it in its alternate screen with mouse
        reports on. Empty when the program cleaned up after itself."""
        self._parse()
        mode = self._screen.mode
        out = [f"\x1b[?{m}l" for m in LEFTOVER_MODES if (m << 5) in mode]
        if _CURSOR_VISIBLE not in mode:
            out.append("\x1b[?25h")
        return "".join(out).encode("ascii")
