"""One run of a spawned agent's program, as the supervisor's event loop sees it: a
process started in a new pseudo-terminal (ptyprocess) or headless (a pipe for its
output, ``/dev/null`` for its input), its output handed to a callback as it comes
(``loop.add_reader``), its exit awaited (a thread blocked in ``waitpid`` per
process: no SIGCHLD handler, which the warm relay's uvicorn would not expect), and
signals for its whole process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ptyprocess import PtyProcess

from ..pty.child import spawn as spawn_pty

#: Bytes read from the program's output at a time.
CHUNK = 65536


class Child:
    """A started program: :attr:`pid`, its output (``on_output(bytes)``, on the loop)
    and :meth:`wait` for its exit code (negative: the signal that ended it).

    Use :func:`start_pty` or :func:`start_headless`.
    """

    def __init__(
        self,
        pid: int,
        fd: int,
        on_output: Callable[[bytes], None],
        *,
        pty: PtyProcess | None = None,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pid = pid
        self.fd: int | None = fd
        self.pty = pty
        self._popen = popen
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)
        threading.Thread(target=self._reap, name=f"spawn-wait-{pid}", daemon=True).start()

    @property
    def running(self) -> bool:
        """Whether the process has not been reaped yet."""
        return not self._exited.done()

    def _readable(self) -> None:
        if self.fd is None:
            return
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal's last writer closed it
            data = b""
        if data:
            self._on_output(data)
        else:
            self._loop.remove_reader(self.fd)

    def _reap(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._exit, code)

    def _exit(self, code: int) -> None:
        if self._popen is not None:
            self._popen.returncode = code  # reaped here: Popen must not wait for it
        if self.pty is not None:
            # Reaped here: ptyprocess must not wait for (or kill) it when it closes.
            self.pty.terminated = True
            if code < 0:
                self.pty.signalstatus, self.pty.exitstatus = -code, None
            else:
                self.pty.signalstatus, self.pty.exitstatus = None, code
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        """The exit code, once the program exited, after the output left in its
        terminal or pipe was handed over; the descriptor is closed then."""
        code = await asyncio.shield(self._exited)
        self._drain()
        return code

    def _drain(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        self._loop.remove_reader(fd)
        for _ in range(64):  # bounded: a grandchild may keep writing
            try:
                data = os.read(fd, CHUNK)
            except OSError:
                break
            if not data:
                break
            self._on_output(data)
        if self.pty is not None:
            self.pty.close(force=False)  # closes the descriptor (the child is reaped)
        elif self._popen is not None and self._popen.stdout is not None:
            self._popen.stdout.close()  # the pipe's file object owns the descriptor

    def write(self, data: bytes) -> int:
        """Write to the terminal (PTY mode); returns the bytes written (0: full).

        Raises:
            OSError: no terminal (headless), or it is gone.
        """
        if self.pty is None or self.fd is None:
            raise OSError("no terminal")
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the program's process group (it leads its own session)."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                os.kill(self.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the program, its process group and every process below it (a
        program under ``relaybus run`` leads a terminal of its own)."""
        for pid in [*descendants(self.pid), self.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def start_pty(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    size: tuple[int, int],
    on_output: Callable[[bytes], None],
) -> Child:
    """Start ``argv`` (``argv[0]`` absolute) in a new pseudo-terminal of ``size`` =
    ``(cols, rows)``.

    Raises:
        OSError: it could not be started.
    """
    pty = spawn_pty(argv, env=env, cwd=cwd, size=size)
    return Child(pty.pid, pty.fd, on_output, pty=pty)


def start_headless(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    on_output: Callable[[bytes], None],
) -> Child:
    """Start ``argv`` with no terminal: stdin ``/dev/null``, stdout and stderr one pipe,
    in a new session (its own process group).

    Raises:
        OSError: it could not be started.
    """
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        close_fds=True,
    )
    assert popen.stdout is not None
    return Child(popen.pid, popen.stdout.fileno(), on_output, popen=popen)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children first), from ``/proc``; none where there
    is no ``/proc`` (macOS: the process groups alone are signalled)."""
    parents: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) >= 2 and fields[1].isdigit():
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 10_000:
        for child in parents.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found
