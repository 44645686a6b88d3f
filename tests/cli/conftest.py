"""Fixtures for the CLI tests: the real ``relaybus`` run as a subprocess on a relay in tmp_path.

Every call is ``python -m relaybus`` with ``RELAYBUS_DIR`` pointing at the test's relay and no
other ``RELAYBUS_*`` variable from the developer's environment. Setup that is not under test
(registering the cast, creating a task) goes through the SDK on the same SQLite file, which
keeps the suite fast: each CLI process pays the interpreter and import start-up.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from tests.support.env import clean_environ
from tests.support.template import seed_sqlite

#: Generous: a CLI call on a loaded CI machine; a hung call fails the test, never the suite.
CALL_TIMEOUT = 60.0

Snapshot = dict[str, list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Result:
    """What one CLI process did."""

    command: str
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def __str__(self) -> str:
        return f"relaybus {self.command} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class Cli:
    """Runs ``python -m relaybus`` against one relay directory.

    Commands are written as shell lines (``'--as bob send --to cap:review "hi there"'``)
    and split with :func:`shlex.split`.
    """

    def __init__(self, relay_dir: Path, cwd: Path) -> None:
        self.relay_dir = relay_dir
        self.cwd = cwd
        self.env = clean_environ()
        self.env["RELAYBUS_DIR"] = str(relay_dir)

    def popen(self, command: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``relaybus COMMAND`` without waiting for it (stdin, stdout, stderr piped)."""
        return subprocess.Popen(
            [sys.executable, "-m", "relaybus", *shlex.split(command)],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )

    def __call__(self, command: str, input: str = "", env: dict[str, str] | None = None) -> Result:
        """Run ``relaybus COMMAND`` to completion."""
        return self.finish(self.popen(command, env=env), command, input)

    def run_all(self, commands: Sequence[str]) -> list[Result]:
        """Run independent commands at the same time; results in the order given."""
        started = [(command, self.popen(command)) for command in commands]
        return [self.finish(proc, command) for command, proc in started]

    @staticmethod
    def finish(proc: subprocess.Popen[str], command: str, input: str = "") -> Result:
        """Feed ``input``, wait for the process and collect what it printed."""
        try:
            out, err = proc.communicate(input, timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return Result(command, proc.returncode, out, err)

    def snapshot(self) -> Snapshot:
        """Every row of every table of the relay: compare two to prove nothing changed."""
        conn = sqlite3.connect(f"file:{self.relay_dir / 'relay.db'}?mode=ro", uri=True)
        try:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = [row[0] for row in names]
            return {t: sorted(conn.execute(f'SELECT * FROM "{t}"'), key=repr) for t in tables}
        finally:
            conn.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on an empty relay directory (created by the first call)."""
    return Cli(tmp_path / ".relay", tmp_path)


@pytest.fixture
def relay(cli: Cli) -> Iterator[Relay]:
    """The same relay through the SDK, with alice, bob and carol registered.

    alice is tagged backend; bob and carol have the capability review; carol is
    labelled "test writer".
    """
    seed_sqlite(cli.relay_dir / "relay.db")  # a migrated relay, as the first call would leave
    with Relay.open(dir=cli.relay_dir) as opened:
        opened.register("alice", tags=["backend"])
        opened.register("bob", capabilities=["review"])
        opened.register("carol", capabilities=["review"], label="test writer")
        yield opened
