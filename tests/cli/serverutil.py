"""Helpers for the CLI tests against a relay server: the real ``relaybus`` as a
subprocess pointed at a real server (``tests/support/live.py``) with ``RELAYBUS_URL``.

The server's store lives in ``tmp_path/server`` and the CLI runs in
``tmp_path/client``, so a CLI that wrongly opened a local relay would find
none to share with the server (and the tests check that it created none).
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from relaybus.service.tokens import hash_token, new_token
from tests.cli.conftest import CALL_TIMEOUT, Cli, Result
from tests.support.live import LiveServer, live_server

#: The admin token of the test servers.
ADMIN = "test-admin-token"


class ServerCli(Cli):
    """Runs ``python -m relaybus`` against a relay server (``RELAYBUS_URL``), as
    ``token`` (default: the admin token). :meth:`snapshot` reads the server's database."""

    def __init__(self, server: LiveServer, server_dir: Path, cwd: Path, token: str | None) -> None:
        super().__init__(server_dir / ".relay", cwd)
        del self.env["RELAYBUS_DIR"]
        self.env["RELAYBUS_URL"] = server.url
        if token is not None:
            self.env["RELAYBUS_TOKEN"] = token
        self.server = server

    def as_token(self, token: str | None) -> dict[str, str]:
        """Environment overrides that make one call act with ``token`` (``""``: none)."""
        return {"RELAYBUS_TOKEN": token or ""}


@contextlib.contextmanager
def cli_on_server(
    tmp_path: Path, *, admin_token: str | None = ADMIN, **config: Any
) -> Iterator[ServerCli]:
    """A relay server for the block, and the CLI pointed at it with its admin token."""
    server_dir = tmp_path / "server"
    client_dir = tmp_path / "client"
    server_dir.mkdir()
    client_dir.mkdir()
    with live_server(server_dir, admin_token=admin_token, **config) as server:
        yield ServerCli(server, server_dir, client_dir, admin_token)
    assert not (client_dir / ".relay").exists(), "the CLI opened a local relay"


def register_with_token(server: LiveServer, agent_id: str, **fields: Any) -> str:
    """Register ``agent_id`` on the server's service directly; returns its new token."""
    token = new_token()
    server.service.register(agent_id, token_hash=hash_token(token), **fields)
    return token


class Tail:
    """A running ``relaybus watch --json``: its stdout lines, read in a thread.

    Wait for an event with :meth:`next_event`; end it like a person would with
    :meth:`interrupt` (SIGINT, i.e. Ctrl-C).
    """

    def __init__(self, proc: subprocess.Popen[str], command: str) -> None:
        self.proc = proc
        self.command = command
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout: float = CALL_TIMEOUT) -> str:
        """The next line printed.

        Raises:
            AssertionError: the process ended, or printed nothing within ``timeout`` s.
        """
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.command} printed nothing for {timeout} s") from None
        if line is None:
            self.lines.put(None)  # stays at the end
            raise AssertionError(f"{self.command} ended: {self.interrupt()}")
        self.seen.append(line)
        return line

    def next_event(
        self, want: Callable[[dict[str, Any]], bool], timeout: float = CALL_TIMEOUT
    ) -> dict[str, Any]:
        """The first event printed from now on that ``want`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            event: dict[str, Any] = json.loads(self.next_line(max(deadline - time.monotonic(), 0)))
            if want(event):
                return event

    def interrupt(self) -> Result:
        """Send SIGINT (Ctrl-C), wait for the process and return what it did."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Still running after Ctrl-C: have faulthandler (PYTHONFAULTHANDLER, set
            # by tail()) print every thread's stack, so the failure says where it hung.
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=10)
            assert self.proc.stderr is not None
            stacks = self.proc.stderr.read()
            for pipe in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
                if pipe is not None:
                    pipe.close()
            raise AssertionError(
                f"{self.command} did not end within {CALL_TIMEOUT} s of SIGINT; "
                f"its threads:\n{stacks}"
            ) from None
        self._reader.join(timeout=CALL_TIMEOUT)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        for pipe in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if pipe is not None:
                pipe.close()
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return Result(self.command, self.proc.returncode, "".join(self.seen + rest), err)


@contextlib.contextmanager
def tail(cli: Cli, command: str, env: dict[str, str] | None = None) -> Iterator[Tail]:
    """Run ``relaybus COMMAND`` (a ``watch``) for the block; it is interrupted at the end
    if the test did not do it."""
    running = Tail(cli.popen(command, env={"PYTHONFAULTHANDLER": "1", **(env or {})}), command)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.interrupt()
