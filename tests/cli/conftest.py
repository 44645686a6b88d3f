"""Fixtures for the CLI tests: the real ``relaybus`` run as a subprocess on a relay in tmp_path.

Every call is ``python -m relaybus`` with ``RELAYBUS_DIR`` pointing at the test's relay and no
other ``RELAYBUS_*`` variable from the developer's environment. Setup that is not under test
(registering the cast, creating a task) goes through the SDK on the same SQLite file, which
keeps the suite fast: each CLI process pays the interpreter and import start-up (~0.5 s of CPU).

Checks of what a command prints and does to the relay, where the process itself is not under
test, may run the same command in the test's process instead (:meth:`Cli.in_process`,
:func:`run_in_process`): the console script's own entry point with the same arguments,
environment and working directory, for ~1/50 of the CPU. What only a process shows (signals,
pipes, the environment a child inherits, the installed script, exit statuses as the shell sees
them) stays a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

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


def run_in_process(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], input: str = ""
) -> tuple[int, str, str]:
    """Run ``relaybus ARGV`` in this process as a subprocess started in ``cwd`` with exactly
    the environment ``env`` and ``input`` on stdin would run it: through
    :func:`relaybus.cli.main`, the console script's entry point (``relaybus hook`` is not
    served here). Returns ``(exit status, stdout, stderr)``; the working directory and
    ``os.environ`` are restored afterwards.

    Raises:
        AssertionError: ``main`` returned instead of exiting.
    """
    from relaybus.cli import main

    assert argv[:1] != ["hook"], "relaybus hook has its own entry point: run it as a process"
    changes: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    changes.update({k: v for k, v in env.items() if os.environ.get(k) != v})
    code: int | None = None
    with (
        contextlib.chdir(cwd),
        CliRunner().isolation(input=input, env=changes) as (out, err, _),
    ):
        try:
            main(list(argv))
        except SystemExit as exit_:
            status = exit_.code
            # What the interpreter makes of sys.exit(status): None is 0, text is printed and 1.
            if isinstance(status, str):
                print(status, file=sys.stderr)
            code = 1 if isinstance(status, str) else status or 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    assert code is not None, f"relaybus {shlex.join(argv)} returned without exiting"
    return code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")


class Cli:
    """Runs ``python -m relaybus`` against one relay directory.

    Commands are written as shell lines (``'--as bob send --to cap:review "hi there"'``)
    and split with :func:`shlex.split`. With ``here``, calls and :meth:`run_all` run in the
    test's process (:meth:`in_process`); :meth:`popen` always starts a process.
    """

    def __init__(self, relay_dir: Path, cwd: Path, *, here: bool = False) -> None:
        self.relay_dir = relay_dir
        self.cwd = cwd
        self.here = here
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
        if self.here:
            return self.in_process(command, input, env)
        return self.finish(self.popen(command, env=env), command, input)

    def in_process(
        self, command: str, input: str = "", env: dict[str, str] | None = None
    ) -> Result:
        """Run ``relaybus COMMAND`` to completion in the test's process (see
        :func:`run_in_process`), with the environment and folder :meth:`popen` gives."""
        code, out, err = run_in_process(
            shlex.split(command), self.cwd, {**self.env, **(env or {})}, input
        )
        return Result(command, code, out, err)

    def run_all(self, commands: Sequence[str]) -> list[Result]:
        """Run independent commands at the same time (one after the other with ``here``);
        results in the order given."""
        if self.here:
            return [self.in_process(command) for command in commands]
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
def cli_here(tmp_path: Path) -> Cli:
    """:func:`cli` run in the test's process (``Cli(here=True)``): for a module whose tests
    check what commands print and do, not the process (a module opts in by defining
    ``cli`` as this)."""
    return Cli(tmp_path / ".relay", tmp_path, here=True)


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
