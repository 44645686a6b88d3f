"""The warm relay as the supervisor's home: it stays past its idle time while a
spawned agent runs, releases its agents when it stops, and types an initial task in.
Real processes; every test stops the warm relay it started."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus.client import Relay, warm
from relaybus.models import SpawnedState, TaskStatus
from tests.support.poll import until

from .test_supervisor import HUNG, program, read


@pytest.fixture
def relay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("RELAYBUS_"):
            monkeypatch.delenv(name)
    folder = tmp_path / ".relay"
    yield folder
    warm.stop(folder)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_warm_relay_stays_while_an_agent_runs_and_releases_it_when_stopped(
    relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DAEMON_IDLE_SECONDS", "1")
    with Relay.open(dir=relay_dir) as relay:
        agent = relay.spawn("sleeper", command=program("ignore-term"), headless=True)
        assert agent.pid is not None
        first = warm.probe(relay_dir)
        assert first is not None and first.pid is not None
        # Past its idle time (1 s) with no request: still there, the agent too.
        assert not until(lambda: not alive(first.pid or 0), 3.0)
        assert relay.spawned_agent("sleeper").state is SpawnedState.RUNNING

        assert warm.stop(relay_dir)

        assert until(lambda: not alive(agent.pid or 0), HUNG)


def test_the_warm_relay_idles_out_once_its_agents_are_gone(
    relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DAEMON_IDLE_SECONDS", "1")
    with Relay.open(dir=relay_dir) as relay:
        relay.spawn("brief", command=program("exit", "0"), headless=True)
        info = warm.probe(relay_dir)
        assert info is not None and info.pid is not None

    assert until(lambda: not alive(info.pid or 0), HUNG)


def test_a_pty_agent_is_typed_its_task_at_its_first_idle_moment(
    relay_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    with Relay.open(dir=relay_dir) as relay:
        relay.spawn("tasked", command=program("echo", str(out)), task="plan the change")

        assert until(lambda: "plan the change" in read(out), HUNG)
        assert read(out).count("plan the change") == 1
        relay.release("tasked")


def test_release_with_an_int_gives_a_task_back(relay_dir: Path) -> None:
    with Relay.open(dir=relay_dir) as relay:
        boss, worker = relay.register("boss"), relay.register("worker")
        message = boss.send("worker", "do it", claimable=True)
        assert message.task_id is not None
        worker.claim(message.task_id)

        task = relay.release(message.task_id)

        assert task.status == TaskStatus.OPEN and task.assignee is None


def test_headless_agents_get_the_callers_environment_and_their_name(
    relay_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.txt"
    script = (
        "import os, sys; open(sys.argv[1], 'w').write("
        "os.environ['RELAYBUS_AGENT'] + ' ' + os.environ['MY_SETTING'] + ' ' "
        "+ os.environ['RELAYBUS_DIR'] + ' ' + str('RELAYBUS_URL' in os.environ))"
    )
    with Relay.open(dir=relay_dir) as relay:
        relay.spawn(
            "envy",
            command=[sys.executable, "-c", script, str(out)],
            headless=True,
            env={"MY_SETTING": "on", "RELAYBUS_URL": "http://elsewhere:1"},
        )
        assert until(lambda: read(out), HUNG)

    assert read(out) == f"envy on {relay_dir} False"
