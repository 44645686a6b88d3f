"""The test suite's embedded PostgreSQL (tests/support/pg.py) never outlives an interrupted run:
pytest stopped by Ctrl-C, twice, or by SIGTERM leaves no server and no folder behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psutil
import pytest

from tests.support import pg

#: The repository root: ``tests`` is a package under it.
ROOT = Path(__file__).resolve().parents[2]
#: Generous: starting PostgreSQL and pytest on a loaded machine.
STARTED = 120.0

TINY_TEST = f"""
import signal, sys
sys.path.insert(0, {str(ROOT)!r})
from tests.support import pg

def test_waits_on_the_database():
    print("URL", pg.server_url(), flush=True)
    signal.pause()  # until the test run is interrupted
"""


def postgres_processes(data: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if data in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGINT, signal.SIGINT], [signal.SIGTERM]],
    ids=["ctrl-c", "ctrl-c twice", "sigterm"],
)
@pytest.mark.slow
def test_an_interrupted_test_run_stops_its_postgres_and_deletes_its_folder(
    tmp_path: Path, signals: list[signal.Signals]
) -> None:
    (tmp_path / "test_tiny.py").write_text(TINY_TEST, encoding="utf-8")
    # The tiny run starts a server of its own: not an external one, nor this run's shared one.
    env = {k: v for k, v in os.environ.items() if k not in (pg.ENV_VAR, pg.SHARED_VAR)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_tiny.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        assert run.stdout is not None
        line = ""
        while not line.startswith("URL "):
            line = run.stdout.readline()
            assert line, "the tiny test ended before it had a database"
        data = urllib.parse.unquote(line.split("host=", 1)[1].strip())
        assert postgres_processes(data), "no server to stop"

        for signum in signals:
            os.killpg(run.pid, signum)  # what a terminal's Ctrl-C does: the whole group
        run.communicate(timeout=STARTED)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()

    assert run.returncode != 0
    assert postgres_processes(data) == []
    assert not Path(data).exists()
    assert not Path(data).parent.exists()
