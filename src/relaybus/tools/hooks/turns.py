"""The background processes of one session's hooks take turns, in the order
their hooks ran.

A hook that answered without the relay hands its relay work to a detached
``relaybus hook EVENT --background`` (:mod:`.command`): SessionStart's
registers the agent, UserPromptSubmit's, Stop's and SessionEnd's change its
presence. Each needs a second or more to load the relay, more on a loaded
machine, so a short session (a headless ``claude -p`` runs all four hooks
within a second or two) starts them while earlier ones still load. Run in the
order they happen to finish, SessionEnd's could find no agent yet (and end
nothing, leaving the agent online once SessionStart's registers it), or Stop's
idle could land after SessionEnd's offline.

So each takes a *turn*: the hook creates a turn file in the session's private
runtime folder before it starts the process (``KEY.turn-NS-PID``, ``NS`` the
system's monotonic clock, zero-padded so that names sort in time), writes the
process's pid into it, and the process waits until every earlier turn file of
the session is gone before it works (:func:`wait_turn`), then removes its own
(:func:`end_turn`). Like a ticket lock, with files: hooks of one session run
one after another, so their turns are ordered.

A turn whose process has died, or that never got a pid within
:data:`UNCLAIMED_SECONDS` (its hook was killed), is removed by whoever waits
behind it; no process waits longer than :data:`TURN_WAIT` seconds.

Standard library only, like :mod:`.command`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: The middle of a turn file's name: ``KEY.turn-NS-PID``.
TURN = ".turn-"
#: Seconds a process waits for the turns before its own at most.
TURN_WAIT = 60.0
#: Seconds a turn file may stay without a pid before it counts as abandoned.
UNCLAIMED_SECONDS = 10.0
#: Seconds between two looks at the folder while waiting.
POLL = 0.02


def pending(folder: Path, key: str) -> bool:
    """Whether session ``key`` has turns not yet ended (its background processes'
    work still to land)."""
    prefix = f"{key}{TURN}"
    try:
        return any(name.startswith(prefix) for name in os.listdir(folder))
    except OSError:
        return False


def take_turn(folder: Path, key: str) -> str:
    """A new turn for session ``key``: an empty 0600 file in its private
    ``folder`` (see :func:`.ledger.private_folder`), last in line; its name.

    Raises:
        OSError: it could not be created.
    """
    name = f"{key}{TURN}{time.monotonic_ns():020d}-{os.getpid()}"
    os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return name


def claim_turn(folder: Path, name: str, pid: int) -> None:
    """Write ``pid``, the process that holds turn ``name``, into its file.

    Raises:
        OSError: it could not be written (the turn is then abandoned after
            :data:`UNCLAIMED_SECONDS`).
    """
    with open(folder / name, "w", encoding="ascii") as f:
        f.write(str(pid))


def end_turn(folder: Path, name: str) -> None:
    """Remove turn ``name`` (gone already: nothing to do)."""
    try:
        os.unlink(folder / name)
    except FileNotFoundError:
        pass


def ended(folder: Path, name: str) -> bool:
    """Whether turn ``name`` is over: its file is gone, or it will never end by
    itself (its process is gone, or no process claimed it in time), and is
    removed here."""
    path = folder / name
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            os.kill(int(text), 0)
            return False
        if time.time() - path.stat().st_mtime <= UNCLAIMED_SECONDS:
            return False
    except FileNotFoundError:
        return True
    except ProcessLookupError:
        pass
    except (OSError, ValueError):
        return False  # another user's live pid (PermissionError), or half written
    end_turn(folder, name)
    return True


def wait_turn(folder: Path, key: str, name: str, *, timeout: float = TURN_WAIT) -> bool:
    """Wait until every turn of session ``key`` taken before ``name`` has ended
    (:func:`ended`); at most ``timeout`` seconds.

    Returns:
        True when it is ``name``'s turn, False when the wait timed out.
    """
    until = time.monotonic() + timeout
    prefix = f"{key}{TURN}"
    while True:
        try:
            earlier = [n for n in os.listdir(folder) if n.startswith(prefix) and n < name]
        except OSError:
            return True  # no folder, no turns
        if all([ended(folder, n) for n in earlier]):
            return True
        if time.monotonic() >= until:
            return False
        time.sleep(POLL)
