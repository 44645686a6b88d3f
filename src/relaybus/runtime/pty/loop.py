"""One run of the program under the PTY runner: the ``select`` loop.

The loop moves bytes both ways (the program's output to the user's terminal or
the log, the user's keystrokes to the program), feeds the output to a
:class:`~..runtime.Screen` and an :class:`~..runtime.IdleGate`, and at each turn
asks the :class:`~..runtime.Mailbox` for a message to type. It sleeps in
``select`` until there is output or input, the mailbox wakes it, a signal
arrives, or the quiet window ends: an idle program costs no CPU.

Writes to the program never block: keystrokes (the user's and the messages')
wait in one ordered buffer until the program's terminal takes them, and a
message counts as typed once its last byte (the Enter) was written.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from ptyprocess import PtyProcess

from ...models import AgentStatus, Message
from .. import IdleGate, Mailbox, MessageFormat, Presence, Screen, batch_keystrokes
from .child import exit_code, signal_child
from .terminal import STOP_SIGNALS, Signals, terminal_size

#: Largest read or write in one go, bytes.
BLOCK = 65536
#: The byte a terminal sends for end-of-file (Ctrl-D), sent when the runner's
#: own stdin (a pipe) ends.
EOF_BYTE = b"\x04"


@dataclass(frozen=True)
class ProgramExit:
    """How one run of the program ended.

    Attributes:
        code: its exit code, or 128 + the signal that ended it.
        killed_by: that signal, if one did.
        stop_signal: a signal the runner itself got (and passed on), which means
            "stop", not "restart".
    """

    code: int
    killed_by: int | None
    stop_signal: int | None


@dataclass(eq=False)
class Pump:
    """The loop of one program run; :meth:`run` returns when the program ended.

    Args:
        child: the program (its PTY master non-blocking, see :func:`.child.spawn`).
        gate, screen, mailbox, presence: the runtime parts (shared across runs).
        signals: the runner's signal flags and wake pipe.
        output: where the program's output goes (the user's terminal, a log).
        stdin_fd: the user's keystrokes, or None (headless).
        size_fds: descriptors whose terminal size the program follows on SIGWINCH.
        on_notice: tells the user something (one line, no newline).
        message_format: how a message is typed (``framed`` or ``raw``).
        batch: at most this many pending messages typed as one input (one turn).
    """

    child: PtyProcess
    _: KW_ONLY
    gate: IdleGate
    screen: Screen
    mailbox: Mailbox
    presence: Presence
    signals: Signals
    output: Callable[[bytes], None]
    stdin_fd: int | None
    size_fds: tuple[int, ...] = ()
    on_notice: Callable[[str], None] = lambda _text: None
    message_format: MessageFormat = MessageFormat.FRAMED
    batch: int = 1

    def __post_init__(self) -> None:
        self._out = bytearray()  # keystrokes not yet taken by the program's terminal
        self._queued = 0  # bytes ever put in _out
        self._written = 0  # bytes ever written
        self._marks: deque[tuple[int, Message]] = deque()  # (end offset, message)
        self._was_idle: bool | None = None
        self._stop_signal: int | None = None
        self._mail_error_told = False
        self._ended = False

    def run(self) -> ProgramExit:
        """Serve the program until it exits; its :class:`ProgramExit`."""
        fd = self.child.fd
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            sel.register(self.signals.fd, selectors.EVENT_READ)
            if self.stdin_fd is not None:
                try:
                    sel.register(self.stdin_fd, selectors.EVENT_READ)
                except PermissionError:  # epoll refuses files (`< input.txt`, /dev/null)
                    self._read_file_input(self.stdin_fd)
            writing = False
            while not self._ended:
                timeout = self._turn()
                if self._ended:
                    break
                if bool(self._out) != writing:
                    writing = bool(self._out)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    sel.modify(fd, events)
                ready = sel.select(timeout)
                # Signals first: a resize must reach the program before keystrokes
                # typed after it. Its handler may have run before its wake-up byte
                # showed in select, hence the check of what was received too.
                if self.signals.pending or any(k.fd == self.signals.fd for k, _ in ready):
                    self._signals(self.signals.take())
                for key, mask in ready:
                    if key.fd == fd:
                        if mask & selectors.EVENT_READ:
                            self._read_program()
                        if mask & selectors.EVENT_WRITE:
                            self._write_program()
                    elif key.fd == self.stdin_fd:
                        self._read_user(sel)
        self._reap()
        return ProgramExit(exit_code(self.child), self.child.signalstatus, self._stop_signal)

    def _reap(self) -> None:
        """Wait for the program to exit (it may have closed its terminal and run
        on), still passing stop signals on to it."""
        if not self.signals.installed:
            self.child.wait()
            return
        while self.child.isalive():
            select.select([self.signals.fd], [], [])  # SIGCHLD wakes this
            self._signals([s for s in self.signals.take() if s in STOP_SIGNALS])

    # -- one turn --------------------------------------------------------------

    def _turn(self) -> float | None:
        """Report idle/busy, type what may be typed, write; the select timeout."""
        now = time.monotonic()
        # The screen is parsed only once the quiet window is over (see Screen.feed).
        idle = (
            not self._out
            and now >= self.gate.deadline()
            and self.gate.idle(self.screen.prompt_line() if self.gate.prompt else "", now)
        )
        if idle != self._was_idle:
            self.presence.report(AgentStatus.IDLE if idle else AgentStatus.BUSY)
            if idle:
                self.mailbox.settled()
            self._was_idle = idle
        if self.mailbox.error is not None and not self._mail_error_told:
            self._mail_error_told = True
            self.on_notice(f"messages stopped: {self.mailbox.error}")
        while messages := self.mailbox.take(idle, self.batch):
            self._type(messages)
            self.gate.injected(now)
            idle = False
        if self._out:
            self._write_program()
        deadline = self.gate.deadline()
        if not idle and now < deadline:
            return deadline - now
        return None  # nothing changes until something happens

    def _type(self, messages: list[Message]) -> None:
        pieces = batch_keystrokes(
            messages, self.message_format, bracketed=self.screen.bracketed_paste
        )
        self._queue(b"".join(pieces))
        # each is typed once the input's last byte (the Enter) is written
        self._marks.extend((self._queued, message) for message in messages)

    def _queue(self, data: bytes) -> None:
        self._out += data
        self._queued += len(data)

    # -- input and output --------------------------------------------------------

    def _write_program(self) -> None:
        try:
            written = os.write(self.child.fd, self._out[:BLOCK])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            return  # the program is gone; the read side ends the loop
        del self._out[:written]
        self._written += written
        while self._marks and self._marks[0][0] <= self._written:
            self.mailbox.typed(self._marks.popleft()[1])

    def _read_program(self) -> None:
        try:
            data = os.read(self.child.fd, BLOCK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""  # Linux: EIO once every process closed the terminal
        if not data:
            self._ended = True
            return
        self.output(data)
        self.screen.feed(data)
        self.gate.activity()

    def _read_file_input(self, fd: int) -> None:
        """Stdin is a file, always readable: type all of it, then end-of-file."""
        while data := os.read(fd, BLOCK):
            self._queue(data)
        self._queue(EOF_BYTE)
        self.stdin_fd = None

    def _read_user(self, sel: selectors.BaseSelector) -> None:
        assert self.stdin_fd is not None
        try:
            data = os.read(self.stdin_fd, BLOCK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # The runner's stdin (a pipe or file) ended: pass the end on, once.
            sel.unregister(self.stdin_fd)
            self.stdin_fd = None
            self._queue(EOF_BYTE)
            return
        self.gate.user_input(data)
        self._queue(data)

    # -- signals -----------------------------------------------------------------

    def _signals(self, received: list[int]) -> None:
        for sig in received:
            if sig == signal.SIGWINCH:
                size = terminal_size(*self.size_fds)
                if size is not None:
                    cols, rows = size
                    self.child.setwinsize(rows, cols)
                    self.screen.resize(cols, rows)
            elif sig == signal.SIGCHLD:
                if not self.child.isalive():
                    self._finish_output()
                    self._ended = True
            elif sig in STOP_SIGNALS:
                # Passed on to the program; a second one insists.
                again = self._stop_signal is not None
                self._stop_signal = sig
                signal_child(self.child, signal.SIGKILL if again else sig)

    def _finish_output(self) -> None:
        """The program exited: show what it wrote last (what its terminal still
        holds), without waiting for processes it left behind."""
        for _ in range(256):  # bounded: a process left behind may keep writing
            try:
                data = os.read(self.child.fd, BLOCK)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self.output(data)
            self.screen.feed(data)
