"""``relaybus demo --server``: the demo through a ``relaybus serve`` it starts itself,
and that server's start and stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaybus.errors import StoreError
from relaybus.workflows.demo_server import ServerProcess
from tests.support.env import clean_environ
from tests.support.live import free_port

SRC = Path(__file__).resolve().parents[2] / "src"
# Generous: a server and a few Python processes on a loaded CI machine; never reached normally.
TIMEOUT = 120.0


def _env() -> dict[str, str]:
    env = clean_environ()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_demo_through_a_server_holds_every_invariant_and_stops_the_server(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", "demo", "--server", "--json"],
        capture_output=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=_env(),
        timeout=TIMEOUT * 2,
    )

    assert done.returncode == 0, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    failed = [inv for inv in doc["invariants"] if not inv["ok"]]
    assert failed == [] and doc["ok"] is True, failed
    server = doc["server"]
    assert server["url"].startswith("http://127.0.0.1:")
    assert server["clean_exit"] is True and server["exit_code"] == 0, server
    assert not _running(server["pid"])
    assert all(agent["exit_code"] == 0 for agent in doc["agents"].values())
    kinds = [(s["kind"], s["agent"]) for s in doc["steps"]]
    assert ("task.claimed", doc["winner"]) in kinds
    assert not Path(doc["relay_dir"]).exists()
    assert not (tmp_path / ".relay").exists()


@pytest.mark.slow
def test_demo_through_a_server_names_it_in_the_header(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relaybus.workflows.demo", "--server", "--reviewers", "1"],
        capture_output=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=_env(),
        timeout=TIMEOUT * 2,
    )

    assert done.returncode == 0, done.stderr + done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  relay server: http://127.0.0.1:") and "(pid " in lines[1]
    assert "✓ demo passed" in done.stdout
    assert lines[-1].startswith("relay server (pid ") and lines[-1].endswith("stopped cleanly")


def test_a_server_that_exits_at_start_is_reported_with_its_last_line(tmp_path: Path) -> None:
    program = [sys.executable, "-c", "import sys; print('address already in use'); sys.exit(3)"]
    server = ServerProcess(tmp_path / ".relay", program=program, env=_env())

    with pytest.raises(StoreError) as caught:
        server.start(TIMEOUT)
    server.stop()

    assert caught.value.message == ("the demo's relay server exited with 3: address already in use")
    assert server.returncode == 3 and not server.clean_exit


@pytest.mark.parametrize(
    "says",
    [
        "",  # never says where it listens
        "relaybus: serving http://127.0.0.1:{port} (auth: open)",  # but nothing listens there
    ],
)
def test_a_server_that_never_gets_ready_is_stopped_by_its_pid(tmp_path: Path, says: str) -> None:
    script = f"import signal; print({says.format(port=free_port())!r}, flush=True); signal.pause()"
    server = ServerProcess(tmp_path / ".relay", program=[sys.executable, "-c", script], env=_env())

    with pytest.raises(StoreError) as caught:
        server.start(1.0)
    pid = server.pid

    assert "the demo's relay server " in caught.value.message
    assert "within 1 s" in caught.value.message
    assert pid is not None and not _running(pid)
    assert server.returncode is not None and not server.clean_exit
