"""Helpers for the setup-command tests: a temporary home with a project in it.

Test modules take the :func:`home` fixture with
``from tests.tools.setuputil import home_fixture as home_fixture``.

Every test runs with ``HOME``, ``XDG_CONFIG_HOME``, ``XDG_STATE_HOME`` and
``CODEX_HOME`` pointed into ``tmp_path`` (in this process and in every CLI
subprocess), so nothing reads or writes the real home folder. The CLI runs as
the installed console script, ``relaybus`` next to the test interpreter: the
path that install writes into the tools' configs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relaybus.tools.install import Context
from tests.support.env import clean_environ

#: The installed relaybus command (what install writes into configs).
RELAYBUS = str(Path(sys.executable).parent / "relaybus")
#: Generous: one CLI call on a loaded machine; a hung call fails the test, never the suite.
CALL_TIMEOUT = 60.0

Tree = dict[str, bytes]


@dataclass(frozen=True)
class Result:
    """What one CLI process did."""

    command: str
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"relaybus {self.command} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class Home:
    """A temporary home folder (``home``), a project in it (``project``), the
    relaybus state folder (``state``) and the environment that points at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.project = self.home / "src" / "app"
        self.codex_home = self.home / ".codex"
        self.project.mkdir(parents=True)
        self.env = clean_environ("CLAUDE_", "CODEX_", "XDG_")
        self.env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_STATE_HOME=str(root / "xdg-state"),
            CODEX_HOME=str(self.codex_home),
        )
        self.state = root / "xdg-state" / "relaybus"

    def __call__(
        self, command: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        """Run ``relaybus COMMAND`` in the project folder to completion."""
        proc = subprocess.run(
            [RELAYBUS, *shlex.split(command)],
            cwd=cwd or self.project,
            env={**self.env, **(env or {})},
            capture_output=True,
            encoding="utf-8",
            timeout=CALL_TIMEOUT,
            check=False,
        )
        return Result(command, proc.returncode, proc.stdout, proc.stderr)

    def context(self, executable: str = RELAYBUS, url: str | None = None) -> Context:
        """The install context of this home and project, for library calls."""
        return Context.create(project=self.project, env=self.env, executable=executable, url=url)

    def write(self, relative: str, text: str) -> Path:
        """Write ``text`` (bytes as given) to ``root/relative``; returns the path."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def read(self, relative: str) -> str:
        with open(self.root / relative, encoding="utf-8", newline="") as f:
            return f.read()

    def load(self, relative: str) -> Any:
        return json.loads(self.read(relative))

    def tree(self) -> Tree:
        """Every file under the home folder (not the state folder), with its bytes;
        folders appear as ``path/`` with no bytes. Compare two to prove what changed."""
        found: Tree = {}
        for folder, dirs, files in os.walk(self.home):
            for name in dirs:
                found[os.path.relpath(os.path.join(folder, name), self.root) + "/"] = b""
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, self.root)] = f.read()
        return found


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A temporary home and project; this process's environment points at it too."""
    made = Home(tmp_path)
    for name in list(os.environ):
        if name.startswith(("CLAUDE_", "CODEX_", "XDG_")):
            monkeypatch.delenv(name)
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "CODEX_HOME"):
        monkeypatch.setenv(name, made.env[name])
    return made


def changed(before: Tree, after: Tree) -> set[str]:
    """The paths added, removed or rewritten between two trees."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
