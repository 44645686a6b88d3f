"""Helpers for the Claude Code hook tests: run ``relaybus hook EVENT`` as a real
subprocess on a recorded hook input, on a relay in ``tmp_path``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.env import clean_environ

PAYLOADS = Path(__file__).parent / "payloads"
#: Generous: a hook process on a loaded CI machine; a hung hook fails the test, not the suite.
CALL_TIMEOUT = 60.0


def payload(name: str, **changes: Any) -> dict[str, Any]:
    """The recorded Claude Code hook input ``payloads/NAME.json``, with ``changes``."""
    with open(PAYLOADS / f"{name}.json", encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    doc.update(changes)
    return doc


@dataclass(frozen=True)
class HookRun:
    """What one hook process did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The hook's output JSON (the test fails if there is none)."""
        assert self.out.strip(), f"the hook printed nothing (stderr: {self.err!r})"
        return json.loads(self.out)

    def context(self) -> str:
        """``hookSpecificOutput.additionalContext`` of the output."""
        output = self.json()["hookSpecificOutput"]
        assert isinstance(output["additionalContext"], str)
        return output["additionalContext"]


def hook_env(tmp_path: Path, runtime: Path, session: str, **extra: str) -> dict[str, str]:
    """An environment for hook processes: the relay in ``tmp_path/relay``, the
    session key ``session``, the state folder in ``tmp_path``, sockets in ``runtime``."""
    env = clean_environ("CLAUDE")
    env.update(
        RELAYBUS_DIR=str(tmp_path / "relay"),
        RELAYBUS_SESSION=session,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_RUNTIME_DIR=str(runtime),
        HOME=str(tmp_path / "home"),
    )
    env.update(extra)
    return env


def run_hook(
    event: str,
    doc: dict[str, Any] | str,
    env: dict[str, str],
    *,
    inline: bool = False,
    tool: str | None = None,
) -> HookRun:
    """Run ``relaybus hook EVENT [--tool TOOL]`` with ``doc`` (a hook input, or raw
    text) on stdin."""
    text = doc if isinstance(doc, str) else json.dumps(doc)
    argv = [sys.executable, "-m", "relaybus", "hook", event, *(["--inline"] if inline else [])]
    argv += ["--tool", tool] if tool else []
    proc = subprocess.run(
        argv,
        input=text,
        capture_output=True,
        encoding="utf-8",
        env=env,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    return HookRun(proc.returncode, proc.stdout, proc.stderr)


def log_lines(tmp_path: Path) -> list[str]:
    """The lines of the hook log (``$XDG_STATE_HOME/relaybus/hooks.log``)."""
    path = tmp_path / "state" / "relaybus" / "hooks.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
