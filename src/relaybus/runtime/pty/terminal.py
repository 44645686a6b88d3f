"""The user's side of the PTY runner: their terminal in raw mode, its size, and
the signals that wake the runner's loop.

Raw mode hands every keystroke to the program untouched (Ctrl-C reaches the
program as a byte, not the runner as a signal); the terminal's settings are
restored on the way out, whatever the way out was.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

#: Signals that ask the runner to stop: forwarded to the program, no restart.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

#: What ``signal.getsignal`` returns.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def terminal_size(*fds: int) -> tuple[int, int] | None:
    """``(cols, rows)`` of the first of ``fds`` that is a terminal, else None."""
    for fd in fds:
        if os.isatty(fd):
            with contextlib.suppress(OSError):
                size = os.get_terminal_size(fd)
                if size.columns > 0 and size.lines > 0:
                    return size.columns, size.lines
    return None


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[bool]:
    """Put the terminal ``fd`` in raw mode for the duration of the block and
    restore its settings after (also on an exception). Yields whether it did:
    False (and nothing changes) when ``fd`` is None or not a terminal."""
    if fd is None or not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield True
    finally:
        with contextlib.suppress(termios.error):  # the terminal is gone
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Signals:
    """Signals as flags plus a self-pipe that wakes a ``select`` loop.

    :meth:`install` (main thread only: Python runs handlers there) catches
    SIGWINCH, SIGCHLD and the :data:`STOP_SIGNALS` and makes each write to the
    pipe (``signal.set_wakeup_fd``); other threads wake the loop with
    :meth:`wake`. The loop selects on :attr:`fd`, then calls :meth:`take`.
    """

    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        self._received: list[int] = []
        self._saved: dict[int, _Handler] = {}
        self._saved_wakeup: int | None = None
        self.installed = False

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Block the caught signals in this thread for the duration of the block:
        threads started inside inherit the mask and never take them.

        The kernel hands a process signal to any thread that does not block it; a
        worker thread that is not scheduled at once would then delay the wake-up,
        and the loop could, say, pass on keystrokes typed after a resize before
        applying the resize. With the signals blocked everywhere else, only the
        main thread (in ``select``) takes them, at once.
        """
        caught = {signal.SIGWINCH, signal.SIGCHLD, *STOP_SIGNALS}
        saved = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)

    def install(self) -> bool:
        """Catch the signals; False (nothing done) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in (signal.SIGWINCH, signal.SIGCHLD, *STOP_SIGNALS):
            self._saved[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        self._saved_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self.installed = True
        return True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._received.append(signum)

    @property
    def pending(self) -> bool:
        """Whether signals were received and not yet taken (their handler ran)."""
        return bool(self._received)

    def wake(self) -> None:
        """Wake the loop (from any thread); never blocks."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, b"\0")

    def take(self) -> list[int]:
        """Empty the pipe; the signals received since the last call, in order."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.fd, 4096):
                pass
        taken, self._received = self._received, []
        return taken

    def close(self) -> None:
        """Restore the previous handlers (if installed) and close the pipe."""
        if self.installed:
            signal.set_wakeup_fd(self._saved_wakeup if self._saved_wakeup is not None else -1)
            for sig, handler in self._saved.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            self.installed = False
        for fd in (self.fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting if it is non-blocking and full."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


def wait_for_stop(signals: Signals, seconds: float) -> bool:
    """Sleep ``seconds`` unless a stop signal arrives first (True then)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([signals.fd], [], [], left)
        if any(sig in STOP_SIGNALS for sig in signals.take()):
            return True
    return False
