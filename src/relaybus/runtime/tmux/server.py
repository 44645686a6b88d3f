"""One tmux server, reached through the ``tmux`` command line: which socket, one-shot
commands, pane lookup and screen capture.

A server is picked like tmux itself does: an explicit socket path (``-S``) or
socket name (``-L``), else the server of the tmux session this process runs in
(``$TMUX``), else tmux's default socket. One-shot commands run as a ``tmux``
subprocess; the long-lived, event-driven connection is :mod:`.control`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...errors import InvalidInput, NotFound, RelayError

#: Seconds a one-shot tmux command may take before it counts as hung.
COMMAND_TIMEOUT = 10.0

#: What tmux prints for a target that names nothing (``can't find pane: %9``).
MISSING_TARGET = "can't find "
#: What tmux prints when no server listens on the socket.
NO_SERVER = ("no server running", "error connecting to")

#: ``display-message`` format of :class:`Pane`, fields separated by tabs; the free-form
#: fields (paths, session name) come last.
PANE_FORMAT = "\t".join(
    (
        "#{pane_id}",
        "#{session_id}",
        "#{window_id}",
        "#{pane_pid}",
        "#{pane_dead}",
        "#{pane_width}",
        "#{pane_height}",
        "#{pane_current_path}",
        "#{socket_path}",
        "#{session_name}:#{window_index}.#{pane_index}",
    )
)


class TmuxError(RelayError):
    """tmux is missing, its server is unreachable, or a tmux command failed."""

    title = "tmux error"


class NoServer(TmuxError):
    """No tmux server listens on the socket."""

    title = "no tmux server"


class PaneNotFound(NotFound):
    """The tmux target names no pane (or the pane has gone away)."""

    title = "no such pane"


@dataclass(frozen=True)
class Pane:
    """A tmux pane as its server reports it.

    Attributes:
        id: the stable pane id (``%3``), valid for the pane's whole life.
        session_id, window_id: ``$0`` and ``@1``, the session and window it is in.
        pid: the pane's first process. dead: the process exited but the pane
            remains (``remain-on-exit``).
        width, height: the pane's size in cells.
        cwd: the current directory of the pane's program (``""`` if unknown).
        socket: the absolute path of the server's socket.
        target: a human address, ``session:window.pane``.
    """

    id: str
    session_id: str
    window_id: str
    pid: int
    dead: bool
    width: int
    height: int
    cwd: str
    socket: str
    target: str

    @classmethod
    def parse(cls, line: str) -> Pane:
        """A :class:`Pane` from one line printed with :data:`PANE_FORMAT`.

        Raises:
            TmuxError: the line does not have the format's fields.
        """
        fields = line.rstrip("\n").split("\t", 9)
        if len(fields) != 10 or not fields[0].startswith("%"):
            raise TmuxError(f"unexpected reply from tmux: {line!r}")
        pane_id, session_id, window_id, pid, dead, width, height, cwd, socket, target = fields
        try:
            return cls(
                pane_id,
                session_id,
                window_id,
                int(pid or 0),
                dead == "1",
                int(width),
                int(height),
                cwd,
                socket,
                target,
            )
        except ValueError:
            raise TmuxError(f"unexpected reply from tmux: {line!r}") from None


@dataclass(frozen=True)
class TmuxServer:
    """How to reach one tmux server.

    At most one of ``socket_path`` (``tmux -S``) and ``socket_name`` (``tmux -L``)
    is set; neither means tmux's default server. ``binary`` is the tmux executable.
    """

    socket_path: str | None = None
    socket_name: str | None = None
    binary: str = "tmux"

    @classmethod
    def choose(
        cls,
        *,
        socket_path: str | None = None,
        socket_name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> TmuxServer:
        """The server an explicit socket names, else the one of ``$TMUX`` (inside a
        tmux pane), else tmux's default.

        Raises:
            InvalidInput: both a socket path and a socket name.
            TmuxError: no ``tmux`` executable on ``PATH``.
        """
        if socket_path and socket_name:
            raise InvalidInput("give a tmux socket path (-S) or a socket name (-L), not both")
        environ = os.environ if env is None else env
        binary = shutil.which("tmux", path=environ.get("PATH"))
        if binary is None:
            raise TmuxError("tmux is not installed: no 'tmux' on PATH")
        if not socket_path and not socket_name:
            # $TMUX is "socket_path,server_pid,session_index" inside a pane.
            inside = environ.get("TMUX", "")
            socket_path = inside.split(",", 1)[0] or None
        if socket_path:
            socket_path = os.path.abspath(socket_path)
        return cls(socket_path=socket_path, socket_name=socket_name or None, binary=binary)

    @property
    def description(self) -> str:
        """The server for messages: ``the tmux server at PATH`` (or named/default)."""
        if self.socket_path:
            return f"the tmux server at {self.socket_path}"
        if self.socket_name:
            return f"the tmux server named {self.socket_name}"
        return "the default tmux server"

    def argv(self, *args: str) -> list[str]:
        """The command line that runs ``tmux ARGS`` against this server."""
        base = [self.binary]
        if self.socket_path:
            base += ["-S", self.socket_path]
        elif self.socket_name:
            base += ["-L", self.socket_name]
        return [*base, *args]

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one tmux command (or a ``;``-separated sequence); returns its stdout.

        Raises:
            PaneNotFound: tmux could not find a target (``can't find pane: %9``).
            TmuxError: no server on the socket, tmux is missing, it hung for
                ``timeout`` seconds, or the command failed.
        """
        try:
            done = subprocess.run(
                self.argv(*args),
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise TmuxError(f"tmux is not installed: cannot run {self.binary}") from None
        except subprocess.TimeoutExpired:
            raise TmuxError(f"tmux did not answer within {timeout:g} s: {args[0]}") from None
        if done.returncode != 0:
            raise self.error(done.stderr.strip() or f"tmux {args[0]} failed")
        return done.stdout

    def error(self, text: str) -> RelayError:
        """The :class:`RelayError` for what tmux said on failure (first line of ``text``)."""
        first = text.strip().splitlines()[0] if text.strip() else "tmux failed"
        if first.startswith(MISSING_TARGET):
            return PaneNotFound(f"{first} on {self.description}")
        if first.startswith(NO_SERVER):
            return NoServer(f"no tmux server is running at that socket ({first})")
        return TmuxError(f"tmux: {first}")

    # -- panes ---------------------------------------------------------------

    def pane(self, target: str) -> Pane:
        """The pane a tmux target names: ``%3``, ``work:0.1``, ``work`` (its active
        pane) and any other form ``tmux -t`` accepts.

        Raises:
            PaneNotFound: no such pane, window or session.
            TmuxError: see :meth:`run`.
        """
        if not target or target != target.strip():
            raise InvalidInput(f"not a tmux pane target: {target!r}")
        # display-message alone falls back to some other pane for a bad target;
        # capture-pane fails on one, so it vouches for the target first.
        out = self.run(
            "capture-pane", "-p", "-t", target, "-S", "0", "-E", "0", ";",
            "display-message", "-p", "-t", target, PANE_FORMAT,
        )  # fmt: skip
        lines = out.splitlines()
        if not lines:
            raise TmuxError(f"no reply from tmux for pane {target}")
        return Pane.parse(lines[-1])

    def capture(self, pane_id: str, *, history: int = 0) -> list[str]:
        """The text of a pane's screen, top to bottom, plus up to ``history`` lines
        of scrollback above it; trailing blank lines are dropped, wide lines are
        joined (``-J``), colours are not included.

        Raises:
            PaneNotFound: the pane is gone. TmuxError: see :meth:`run`.
        """
        args = ["capture-pane", "-p", "-J", "-t", pane_id]
        if history > 0:
            args += ["-S", str(-history)]
        return trim(self.run(*args).splitlines())


def trim(lines: Sequence[str]) -> list[str]:
    """``lines`` without the blank lines at the end (the unused bottom of a screen)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return [line.rstrip() for line in lines[:end]]


def last_line(lines: Sequence[str]) -> str:
    """The last non-blank line of a screen, or ``""`` for a blank one."""
    kept = trim(lines)
    return kept[-1] if kept else ""
