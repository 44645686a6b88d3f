"""The program under the PTY runner: started in a new pseudo-terminal (ptyprocess).

The program is the session leader of its own terminal, so job control, Ctrl-C
(as a byte, turned into SIGINT by its terminal) and ``/dev/tty`` work as in a
real terminal. Its exit code is the runner's: the code it exited with, or
128 + the signal that killed it (as a shell reports it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence

from ptyprocess import PtyProcess

from ...errors import InvalidInput


def resolve(command: str, env: Mapping[str, str], cwd: str) -> str:
    """The absolute path of ``command``, found on the ``PATH`` of ``env`` (a name)
    or relative to ``cwd`` (a path with a slash).

    Raises:
        InvalidInput: no such executable.
    """
    if os.sep in command:
        path = command if os.path.isabs(command) else os.path.join(cwd, command)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        reason = "is not executable" if os.path.exists(path) else "does not exist"
        raise InvalidInput(f"cannot run {command}: it {reason}", command=command)
    found = shutil.which(command, path=env.get("PATH", os.defpath))
    if found is None:
        raise InvalidInput(f"command not found: {command} (not on PATH)", command=command)
    return os.path.abspath(found)


def _default_signals() -> None:
    # Python ignores SIGPIPE (and SIGXFSZ); an ignored signal stays ignored
    # across exec, which would change how the program dies on a closed pipe.
    for name in ("SIGPIPE", "SIGXFSZ"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str, size: tuple[int, int]
) -> PtyProcess:
    """Start ``argv`` (``argv[0]`` an absolute path, see :func:`resolve`) in a new
    pseudo-terminal of ``size`` = ``(cols, rows)``.

    Raises:
        OSError: the program could not be started (e.g. exec failed).
    """
    cols, rows = size
    child = PtyProcess.spawn(
        list(argv),
        cwd=cwd,
        env=dict(env),
        dimensions=(rows, cols),
        preexec_fn=_default_signals,
    )
    child.delayafterclose = 0.0  # close() need not wait: we reaped the child already
    os.set_blocking(child.fd, False)
    return child


def exit_code(child: PtyProcess) -> int:
    """The finished child's exit code, or 128 + the signal that ended it."""
    if child.signalstatus is not None:
        return 128 + int(child.signalstatus)
    return int(child.exitstatus or 0)


def signal_child(child: PtyProcess, sig: int) -> None:
    """Send ``sig`` to the program's process group (it leads its own session), so
    a wrapper shell and what it runs both get it. Nothing if it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            os.kill(child.pid, sig)
