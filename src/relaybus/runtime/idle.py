"""When a terminal program is idle: the quiet window and the prompt pattern.

A program is **idle** when nothing happened for ``quiet`` seconds (no output
from it and no keystrokes from its user) and, if a prompt pattern is given, the
pattern matches its prompt line (the last non-blank line of its screen, up to
the cursor when the cursor is on it: see :meth:`.screen.Screen.prompt_line`).
The moment a program becomes idle is an **idle boundary**: the runtime types
the next waiting message there, and marks read what it typed before (so with a
prompt pattern, read means "back at its prompt").

A user who typed part of a line and paused is not idle either: a message typed
then would land in the middle of their line. That lasts until they end the line
(Enter, Ctrl-C, Ctrl-D, Ctrl-U) or for ``typing_grace`` seconds at most.

All times are :func:`time.monotonic` seconds.
"""

from __future__ import annotations

import re
import time

from ..errors import InvalidInput

#: Default quiet window, seconds.
QUIET_SECONDS = 0.75
#: Longest a half-typed line of the user holds messages back, seconds.
TYPING_GRACE_SECONDS = 30.0

#: Bytes that end the user's line: Enter (CR, LF), Ctrl-C, Ctrl-D, Ctrl-U.
_LINE_ENDS = frozenset(b"\r\n\x03\x04\x15")
_ESC = 0x1B


def compile_prompt(pattern: str | None, *, option: str = "--prompt") -> re.Pattern[str] | None:
    """``pattern`` compiled (``None`` stays ``None``).

    Raises:
        InvalidInput: not a valid Python regular expression; the message names ``option``.
    """
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(
            f"{option} {pattern!r} is not a valid regular expression: {exc}", option=option
        ) from None


class IdleGate:
    """Decides when a program is idle (see the module docstring).

    Args:
        quiet: the quiet window, seconds (> 0).
        prompt: a regular expression (text or compiled) searched (``re.search``)
            in the prompt line (see :meth:`idle`), as shown and with its
            trailing blanks removed: ``r"^>>> "``, ``r"^>>>$"`` and ``r"\\$ $"``
            all work; ``None`` means the quiet window alone decides.
        typing_grace: longest a half-typed user line holds idleness back, seconds.
        now: the start of the first quiet window (default: now).

    Raises:
        InvalidInput: ``quiet`` or ``typing_grace`` not positive, or a bad ``prompt``.

    Not thread-safe: one loop owns it.
    """

    def __init__(
        self,
        quiet: float = QUIET_SECONDS,
        prompt: str | re.Pattern[str] | None = None,
        *,
        typing_grace: float = TYPING_GRACE_SECONDS,
        now: float | None = None,
    ) -> None:
        if not quiet > 0:
            raise InvalidInput(f"the quiet window must be above 0 seconds, not {quiet}")
        if not typing_grace > 0:
            raise InvalidInput(f"the typing grace must be above 0 seconds, not {typing_grace}")
        self.quiet = float(quiet)
        self.prompt = compile_prompt(prompt) if isinstance(prompt, str) else prompt
        self.typing_grace = float(typing_grace)
        self.last_activity = time.monotonic() if now is None else now
        #: The user typed a line they have not ended yet (see the module docstring).
        self.typing = False
        self._in_escape = False
        self._escape_start = False

    def activity(self, now: float | None = None) -> None:
        """Something happened (program output, text typed into it): the quiet
        window starts again at ``now``."""
        self.last_activity = time.monotonic() if now is None else now

    def injected(self, now: float | None = None) -> None:
        """The runtime typed a message (ending with Enter) into the program:
        activity, and the Enter ended whatever line the user had half typed."""
        self.activity(now)
        self.typing = False

    def user_input(self, data: bytes, now: float | None = None) -> None:
        """The user typed ``data``: activity, and track whether they left a line
        half typed. Escape sequences (arrow keys, focus and mouse reports) do not
        count as typing; printable text does, until a line end."""
        self.activity(now)
        for byte in data:
            if self._in_escape:
                # CSI/SS3 sequences end with a final byte in 0x40-0x7E; ESC [ and ESC O
                # introduce them. A lone ESC followed by anything else ends at that byte.
                if byte in (0x5B, 0x4F) and self._escape_start:
                    self._escape_start = False
                    continue
                self._escape_start = False
                if 0x40 <= byte <= 0x7E:
                    self._in_escape = False
                continue
            if byte == _ESC:
                self._in_escape = True
                self._escape_start = True
            elif byte in _LINE_ENDS:
                self.typing = False
            elif byte >= 0x20 and byte != 0x7F:
                self.typing = True

    def deadline(self) -> float:
        """The monotonic time at which :meth:`idle` may turn true without any new
        activity: the end of the quiet window, or of the typing grace while the
        user has a half-typed line. A loop sleeps until then (never polls)."""
        if self.typing:
            return self.last_activity + max(self.quiet, self.typing_grace)
        return self.last_activity + self.quiet

    def idle(self, last_line: str, now: float | None = None) -> bool:
        """Whether the program is idle at ``now`` given its prompt line: the last
        non-blank line of its screen, up to the cursor when the cursor is on it
        (see :meth:`Screen.prompt_line <.screen.Screen.prompt_line>`). The
        pattern may match the line as given or with its trailing blanks removed."""
        now = time.monotonic() if now is None else now
        if now < self.deadline():
            return False
        if self.prompt is None:
            return True
        return (
            self.prompt.search(last_line) is not None
            or self.prompt.search(last_line.rstrip()) is not None
        )
