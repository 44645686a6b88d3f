"""Checking a step's result before the step counts as done (a step's ``verify:``).

Every check given must pass: the result ``contains`` a text; a ``file`` exists
(relative to the workflow file's folder); a shell ``command`` exits 0, run in that
folder with ``RELAYBUS_RESULT`` holding the result, within the step's timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .spec import Verify

#: Characters of a failing command's output quoted in the reason.
OUTPUT_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`: ``ok``, and ``reason`` (why not) when it failed."""

    ok: bool
    reason: str | None = None


PASSED = Verdict(True)


def verify(result: str, check: Verify | None, folder: Path, timeout: float) -> Verdict:
    """Check ``result`` against ``check`` (``None``: nothing to check), in ``folder``
    (the workflow file's), giving a ``command`` at most ``timeout`` seconds.

    The cheap checks run first, so a missing text fails without running the command.
    Never raises: a command that cannot start, or runs too long, fails the check.
    """
    if check is None:
        return PASSED
    if check.contains is not None and check.contains not in result:
        return Verdict(False, f"the result does not contain {check.contains!r}")
    if check.file is not None and not (folder / check.file).exists():
        return Verdict(False, f"file {check.file} does not exist (in {folder})")
    if check.command is not None:
        return _run(check.command, result, folder, timeout)
    return PASSED


def needs_process(check: Verify | None) -> bool:
    """Whether :func:`verify` would start a process (a ``command`` check): the
    runner then checks in a thread, not in its loop."""
    return check is not None and check.command is not None


def _run(command: str, result: str, folder: Path, timeout: float) -> Verdict:
    env = {**os.environ, "RELAYBUS_RESULT": result}
    try:
        proc = subprocess.Popen(
            command,
            shell=True,  # the file gives a shell command line: `test -f out.txt && ...`
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own group: a timeout ends what it started too
        )
    except OSError as exc:
        return Verdict(False, f"command {command!r} could not run: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group of the shell we started
        proc.communicate()
        return Verdict(False, f"command {command!r} ran longer than {timeout:g} s")
    if proc.returncode == 0:
        return PASSED
    said = (err.strip() or out.strip())[-OUTPUT_CHARS:]
    detail = f": {said}" if said else ""
    return Verdict(False, f"command {command!r} exited {proc.returncode}{detail}")
