"""A tmux control-mode client: commands with replies, and pane output as events.

``tmux -C attach-session`` turns a tmux client into a line protocol on its stdin
and stdout (tmux(1), CONTROL MODE): each command line written gets one reply
block, ``%begin TIME NUMBER FLAGS`` … ``%end TIME NUMBER FLAGS`` (or ``%error``),
and between blocks tmux pushes notifications such as ``%output %3 text`` (a pane
wrote to its terminal, non-printable bytes and ``\\`` escaped as octal ``\\ooo``)
and ``%exit`` (the client is leaving). Reading that stream in a thread that
blocks on the pipe is what makes output activity event-driven: no capture-pane
polling, no CPU while the pane is quiet.

The client attaches with ``-f ignore-size`` (it never shrinks the windows the
user sees) and ``-E`` (it leaves the session's environment alone). tmux sends
the output of every pane of the attached session; the reader drops what is not
from a watched pane without decoding it. Switching those panes off instead
(``refresh-client -A %N:off``) is unsafe: tmux 3.3a's server crashes when a
pane is switched off while its output is queued for the client, and later
releases stop reading a pane that every control client switched off, which
would freeze the program in it.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from .server import COMMAND_TIMEOUT, TmuxError, TmuxServer

logger = logging.getLogger(__name__)

#: Seconds :meth:`ControlClient.close` waits for the tmux client to detach before killing it.
DETACH_TIMEOUT = 5.0

_OCTAL = re.compile(rb"\\([0-7]{3})")
#: Characters a single-quoted tmux word cannot hold as they are.
_SPECIAL = re.compile(r"['\x00-\x1f\x7f]+")

OutputHandler = Callable[[str, bytes], None]
"""Called with ``(pane_id, data)`` for output of a watched pane (from the reader thread)."""
EventHandler = Callable[[str, str], None]
"""Called with ``(name, arguments)`` for every other notification, e.g.
``("window-close", "@2")``, and with ``("exit", reason)`` once when the client ends."""


class ControlClosed(TmuxError):
    """The control-mode client has exited (detached, server gone, or closed)."""


class CommandFailed(TmuxError):
    """tmux answered a command with ``%error``; the message is what it printed."""


def unescape(value: bytes) -> bytes:
    """The bytes of a ``%output`` value: every octal escape ``\\ooo`` decoded.

    tmux escapes ``\\`` itself (as ``\\134``), so every backslash starts an escape.
    """
    return _OCTAL.sub(lambda m: bytes([int(m[1], 8)]), value)


def quote(word: str) -> str:
    """``word`` as one tmux command-language word that stands for exactly ``word``.

    Plain runs go in single quotes (no ``$VAR``/``~`` expansion, ``;`` and ``#``
    are literal); ``'``, control characters and DEL go in double quotes as
    octal escapes; adjacent quoted parts join into one word, as in sh. The
    result never holds a line break, so it fits one control-mode line.
    """
    parts: list[str] = []
    start = 0
    for match in _SPECIAL.finditer(word):
        if match.start() > start:
            parts.append(f"'{word[start : match.start()]}'")
        parts.append('"' + "".join(f"\\{ord(c):03o}" for c in match.group()) + '"')
        start = match.end()
    if start < len(word) or not parts:
        parts.append(f"'{word[start:]}'")
    return "".join(parts)


def command_line(args: Sequence[str]) -> bytes:
    """One control-mode input line running the command ``args`` (a name, then its
    arguments, each quoted with :func:`quote`)."""
    if not args:
        raise ValueError("a tmux command needs a name")
    words = [args[0], *(quote(a) for a in args[1:])]
    return (" ".join(words) + "\n").encode("utf-8", errors="replace")


@dataclass
class _Pending:
    """A command written to tmux, waiting for its reply block."""

    done: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)
    error: bool = False
    closed: bool = False


@dataclass
class _Block:
    key: bytes
    mine: bool
    lines: list[bytes] = field(default_factory=list)


class ControlClient:
    """One ``tmux -C attach-session`` client on a session of ``server``.

    Output of the panes given to :meth:`watch` goes to ``on_output``; other
    notifications and the client's end go to ``on_event``. Both run in the
    reader thread and must not wait for a command reply (use :meth:`send`).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        server: TmuxServer,
        session: str,
        *,
        on_output: OutputHandler | None = None,
        on_event: EventHandler | None = None,
        watch: Iterable[str] = (),
    ) -> None:
        self.server = server
        self.session = session
        self.on_output = on_output
        self.on_event = on_event
        self.exit_reason: str | None = None
        #: tmux's name for this client (e.g. ``client-4711``), once started.
        self.client_name = ""
        self._watched: frozenset[str] = frozenset(watch)
        self._pending: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._attached = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    # -- life ----------------------------------------------------------------

    def start(self, timeout: float = COMMAND_TIMEOUT) -> ControlClient:
        """Attach to the session and wait until tmux answers.

        Raises:
            TmuxError: tmux refused to attach (no server, no such session) or did
                not answer within ``timeout`` seconds.
        """
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        argv = self.server.argv(
            "-u", "-C", "attach-session", "-E", "-f", "ignore-size", "-t", self.session
        )
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C meant for us must not kill it before we detach.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="tmux-control", daemon=True)
        self._reader.start()
        try:
            # Commands on stdin may run before the attach-session of the command
            # line is done; tmux reports the attach with %session-changed.
            if not self._attached.wait(timeout) and not self._closed.is_set():
                raise TmuxError(f"tmux did not attach to session {self.session} in {timeout:g} s")
            if self._closed.is_set():
                raise ControlClosed(self._ended())
            named = self.command("display-message", "-p", "#{client_name}")
            self.client_name = named[0] if named else ""
        except TmuxError:
            self.close()
            raise
        return self

    @property
    def alive(self) -> bool:
        """Whether the client is still attached."""
        return self._proc is not None and not self._closed.is_set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the client has ended; ``False`` if ``timeout`` passed first."""
        return self._closed.wait(timeout)

    def close(self) -> None:
        """Detach (close tmux's stdin), wait for the client to exit and release its
        pipes and thread. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        with self._lock:
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass  # tmux already went away: nothing to flush
        try:
            proc.wait(DETACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(DETACH_TIMEOUT)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self._closed.set()
        self._fail_pending()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- panes ---------------------------------------------------------------

    def watch(self, pane_id: str) -> None:
        """Deliver ``pane_id``'s output to ``on_output`` from now on."""
        with self._lock:
            self._watched = self._watched | {pane_id}  # a new set: the reader never locks

    # -- commands ------------------------------------------------------------

    def command(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> list[str]:
        """Run one tmux command over the control connection; returns its output lines.

        Raises:
            CommandFailed: tmux answered with an error (e.g. ``can't find pane: %9``).
            ControlClosed: the client ended before the reply came.
            TmuxError: no reply within ``timeout`` seconds.
        """
        return self.command_all([args], timeout=timeout)[0]

    def command_all(
        self, commands: Sequence[Sequence[str]], *, timeout: float = COMMAND_TIMEOUT
    ) -> list[list[str]]:
        """Run several commands in order, written at once (one round trip, not one
        per command); returns each one's output lines. tmux runs them one after
        the other; a failed one does not stop the rest.

        Raises:
            CommandFailed: the first command that failed (after all have answered).
            ControlClosed, TmuxError: as for :meth:`command`.
        """
        pending = [self._write(args) for args in commands]
        for one, args in zip(pending, commands, strict=True):
            if not one.done.wait(timeout):
                raise TmuxError(f"tmux did not answer {args[0]} within {timeout:g} s")
            if one.closed:
                raise ControlClosed(self._ended())
        for one, args in zip(pending, commands, strict=True):
            if one.error:
                raise CommandFailed(" ".join(one.lines) or f"tmux {args[0]} failed")
        return [one.lines for one in pending]

    def send(self, *args: str) -> None:
        """Run one tmux command without waiting for its reply (safe in the reader
        thread); a failure is only logged. Does nothing once the client has ended."""
        try:
            self._write(args)
        except ControlClosed:
            pass

    def _write(self, args: Sequence[str]) -> _Pending:
        line = command_line(args)
        pending = _Pending()
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed or self._closed.is_set():
                raise ControlClosed(self._ended())
            self._pending.append(pending)
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except OSError:
                self._pending.remove(pending)
                raise ControlClosed(self._ended()) from None
        return pending

    def _ended(self) -> str:
        reason = self.exit_reason
        return f"the tmux control client has exited{f' ({reason})' if reason else ''}"

    # -- reading -------------------------------------------------------------

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            self._parse(proc.stdout)
        except Exception:  # the reader thread's top-level boundary
            logger.exception("tmux control client reader failed")
        finally:
            if self.exit_reason is None:
                self.exit_reason = _stderr(proc) or "the tmux client ended"
            self._closed.set()
            self._attached.set()  # wakes start(), which then sees the client closed
            self._fail_pending()
            self._emit("exit", self.exit_reason)

    def _parse(self, stream: IO[bytes]) -> None:
        block: _Block | None = None
        for raw in stream:
            line = raw.rstrip(b"\n")
            if block is not None:
                tag, _, rest = line.partition(b" ")
                if tag in (b"%end", b"%error") and rest == block.key:
                    if block.mine:
                        self._reply(block, error=tag == b"%error")
                    block = None
                else:
                    block.lines.append(line)
                continue
            if line.startswith(b"%begin "):
                key = line[len(b"%begin ") :]
                # FLAGS is 1 for a command read from this client's stdin, 0 for
                # others (the attach-session of our own command line).
                block = _Block(key, mine=key.endswith(b" 1"))
            elif line.startswith((b"%output ", b"%extended-output ")):
                self._output(line)
            elif line.startswith(b"%"):
                name, _, args = line[1:].decode("utf-8", "replace").partition(" ")
                if name == "exit":
                    self.exit_reason = args or "exited"
                elif name == "session-changed" and not self._attached.is_set():
                    self._attached.set()
                    self._emit(name, args)
                elif name == "pause":
                    self.send("refresh-client", "-A", f"{args}:continue")
                else:
                    self._emit(name, args)

    def _output(self, line: bytes) -> None:
        kind, _, rest = line.partition(b" ")
        pane, _, value = rest.partition(b" ")
        if kind == b"%extended-output":
            # %extended-output %ID AGE ... : VALUE
            _, _, value = value.partition(b" : ")
        pane_id = pane.decode("ascii", "replace")
        if pane_id not in self._watched:
            return
        if self.on_output is not None:
            self.on_output(pane_id, unescape(value))

    def _reply(self, block: _Block, *, error: bool) -> None:
        with self._lock:
            pending = self._pending.popleft() if self._pending else None
        if pending is None:
            logger.warning("tmux reply with no command waiting: %r", block.lines)
            return
        pending.lines = [b.decode("utf-8", "replace") for b in block.lines]
        pending.error = error
        if error:
            logger.debug("tmux command failed: %s", pending.lines)
        pending.done.set()

    def _fail_pending(self) -> None:
        with self._lock:
            waiting = list(self._pending)
            self._pending.clear()
        for pending in waiting:
            pending.closed = True
            pending.done.set()

    def _emit(self, name: str, args: str) -> None:
        if self.on_event is not None:
            self.on_event(name, args)


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    """What the tmux client printed on stderr (its reason for leaving), one line."""
    if proc.stderr is None or proc.stderr.closed:
        return ""
    try:
        text = proc.stderr.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return " ".join(text.split())
