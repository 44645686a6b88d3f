"""Starting and stopping the warm local relay: the spawn lock, the detached start, and
the waits for a relay that holds its folder without answering yet, or is on its way
out. Split from :mod:`relaybus.client.warm`, which loads it only to start or stop a
relay (a hook that finds one running never does)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from .warm import (
    CALLER_VARIABLES,
    LOCK_NAME,
    OWNER_LOCK,
    SIGTERM,
    START_TIMEOUT,
    WarmInfo,
    held,
    log_path,
    probe,
    socket_path,
)


def wait_released(relay_dir: Path, deadline: float) -> None:
    """Wait until no relay holds ``relay_dir``'s :data:`OWNER_LOCK` (a relay stops
    answering before it exits; one started meanwhile would find the folder taken)."""
    import fcntl

    fd = os.open(Path(relay_dir) / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:  # closing the descriptor releases the lock again
        while time.monotonic() < deadline:  # past it, the caller goes on
            with contextlib.suppress(BlockingIOError):
                return fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            time.sleep(0.02)
    finally:
        os.close(fd)


@contextlib.contextmanager
def spawn_lock(relay_dir: Path) -> Iterator[None]:
    Path(relay_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(Path(relay_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl  # here: only a start takes the lock

        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def start(relay_dir: Path, env: Mapping[str, str] | None) -> WarmInfo:
    path = socket_path(relay_dir)
    info = starting(relay_dir)
    if info is not None:
        return info
    if held(relay_dir):
        from ..errors import StoreError

        log = log_path(relay_dir)
        raise StoreError(
            f"a warm relay holds {relay_dir} but does not answer ({_last_line(log)}): "
            f"see {log}, or set RELAYBUS_DAEMON=0 to open the store in each command",
            log=str(log),
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: no relay holds the folder (and we hold the spawn lock)
    if path.parent != Path(relay_dir):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    child_env = {
        k: v for k, v in (os.environ if env is None else env).items() if k not in CALLER_VARIABLES
    }
    child_env["RELAYBUS_DIR"] = os.path.abspath(relay_dir)
    child_env.pop("RELAYBUS_DATABASE", None)
    log = log_path(relay_dir)
    with open(log, "ab"):
        os.chmod(log, 0o600)
    import subprocess

    # The relay is started by a shell that exits at once (a double fork): it is
    # nobody's child here, so this process never has to reap it, and a long-lived
    # SDK process is not left with a zombie when the relay exits.
    launcher = subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" </dev/null >>"$0" 2>&1 & echo $!', str(log)]
        + [sys.executable, "-m", "relaybus.server.warm"],
        cwd=relay_dir,
        env=child_env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the relay outlives the command, away from its terminal
        check=True,
    )
    pid = int(launcher.stdout.strip())
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        info = probe(relay_dir)
        if info is not None:
            return info
        gone = not _alive(pid)
        if gone or time.monotonic() > deadline:
            if not gone:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, SIGTERM)
            from ..errors import StoreError

            raise StoreError(
                f"the warm relay did not start ({_last_line(log)}): see {log}, or set "
                "RELAYBUS_DAEMON=0 to open the store in each command",
                log=str(log),
            )
        time.sleep(0.01)


def starting(relay_dir: Path) -> WarmInfo | None:
    """The relay that holds ``relay_dir`` without answering yet, once it answers; ``None``
    when no relay holds the folder (or once the one that held it has let go: it was on
    its way out), or after :data:`START_TIMEOUT` seconds.

    A relay takes the folder's :data:`OWNER_LOCK` before it binds its socket, and
    answers about a second later: a caller that finds the socket silent in between
    must not take it for a stale one (its starter may have been interrupted, or exited,
    before the relay answered)."""
    deadline = time.monotonic() + START_TIMEOUT
    while held(relay_dir) and time.monotonic() < deadline:
        info = probe(relay_dir)
        if info is not None:
            return info
        time.sleep(0.01)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "no log"
        raise
    return lines[-1] if lines else "no output"
