"""Running ``relaybus workflow run`` as a user does, for the tests whose runs spawn
their agents through a warm local relay: :func:`warm_relay_dir` (a relay folder whose
warm relay, if a test started one, is stopped by its pid) and :func:`run_workflow`
(the command to completion, its JSON lines parsed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from relaybus.client import warm
from tests.support.env import clean_environ


def warm_relay_dir(tmp_path: Path) -> Iterator[Path]:
    """A fixture's body: ``tmp_path/.relay``, then stop the warm relay it got."""
    folder = tmp_path / ".relay"
    folder.mkdir(mode=0o700)
    yield folder
    info = warm.probe(folder)
    if info is not None and info.pid is not None:
        os.kill(info.pid, signal.SIGTERM)  # the warm relay this test started, by its pid


def spawning_env(relay_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment on ``relay_dir`` with the warm relay on (spawning needs it)."""
    env = {k: v for k, v in clean_environ().items() if k != "RELAYBUS_DAEMON"}
    env["RELAYBUS_DIR"] = str(relay_dir)
    env.update(extra)
    return env


def run_workflow(
    file: str | Path, cwd: Path, env: Mapping[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``relaybus workflow run FILE --json`` to completion: the process and its events."""
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", "workflow", "run", str(file), "--json"],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, events
