"""Spawned agents end to end: the SDK on a tmp relay folder, its warm relay (a real
``python -m relaybus.server.warm``) supervising real programs (tests/runtime/spawn/
program.py) in real PTYs under ``relaybus run``, or headless. Every test releases
what it spawned and stops the warm relay it started."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaybus.client import Relay, warm
from relaybus.errors import Conflict, InvalidInput, NotFound, RelayError
from relaybus.models import SpawnedState, SpawnEventKind, TaskStatus
from tests.support.live import UNUSED_TLS, live_server
from tests.support.poll import until

PROGRAM = str(Path(__file__).with_name("program.py"))
#: Generous: relaybus run starting on a loaded 2-core machine.
HUNG = 60.0


def program(*args: str) -> list[str]:
    return [sys.executable, PROGRAM, *args]


@pytest.fixture
def relay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("RELAYBUS_"):
            monkeypatch.delenv(name)  # the suite's RELAYBUS_DAEMON=0 too: spawning needs it
    folder = tmp_path / ".relay"
    yield folder
    if warm.probe(folder) is not None:
        with Relay.open(dir=folder) as relay:
            for agent in relay.spawned():
                if agent.state in (SpawnedState.RUNNING, SpawnedState.RESTARTING):
                    relay.release(agent.name, timeout=1.0)
        warm.stop(folder)


@pytest.fixture
def relay(relay_dir: Path) -> Iterator[Relay]:
    with Relay.open(dir=relay_dir) as opened:
        yield opened


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_pty_agent_registers_gets_mail_typed_in_and_shows_screen_logs_and_input(
    relay: Relay, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    since = relay.last_event_id()
    agent = relay.spawn("echoer", command=program("echo", str(out)), capabilities=["review"])
    assert agent.state is SpawnedState.RUNNING and agent.pid is not None

    assert until(lambda: any(a.id == "echoer" for a in relay.agents()), HUNG)
    assert relay.get_agent("echoer").capabilities == ["review"]
    assert until(lambda: relay.spawned_agent("echoer").idle, HUNG)  # at its prompt
    boss = relay.register("boss")
    boss.send("echoer", "hello there")
    assert until(lambda: "hello there" in read(out), HUNG)
    assert until(lambda: any("got: [relaybus" in line for line in relay.logs("echoer")), HUNG)

    relay.send_input("echoer", "typed by hand", enter=True)
    assert until(lambda: "typed by hand" in read(out), HUNG)
    screen = relay.screen("echoer")
    assert screen.columns == 120 and len(screen.lines) == screen.rows
    assert any("got: typed by hand" in line for line in screen.lines)

    released = relay.release("echoer", reason="done")
    assert released.state is SpawnedState.RELEASED
    assert relay.get_agent("echoer").status == "offline"
    kinds = [e.kind for e in relay.spawn_events(after=since, timeout=0)]
    assert kinds[0] is SpawnEventKind.SPAWNED
    assert kinds[-2:] == [SpawnEventKind.EXITED, SpawnEventKind.RELEASED]
    assert SpawnEventKind.IDLE in kinds


def test_a_spawned_agent_outlives_the_process_that_spawned_it(
    relay: Relay, relay_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    script = (
        "import sys; from relaybus.client import Relay\n"
        "with Relay.open(dir=sys.argv[1]) as relay:\n"
        "    print(relay.spawn('survivor', command=sys.argv[2:]).pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(relay_dir), *program("echo", str(out))],
        capture_output=True,
        text=True,
        timeout=HUNG,
        check=True,
    )
    pid = int(done.stdout.strip())

    assert relay.spawned_agent("survivor").state is SpawnedState.RUNNING
    assert relay.spawned_agent("survivor").pid == pid
    relay.send_input("survivor", "still here", enter=True)
    assert until(lambda: "still here" in read(out), HUNG)
    relay.release("survivor")


def test_release_forces_a_program_that_ignores_sigterm(relay: Relay) -> None:
    relay.spawn("stubborn", command=program("ignore-term"))
    assert until(lambda: any("stubborn>" in line for line in relay.screen("stubborn").lines), HUNG)

    released = relay.release("stubborn", reason="enough", timeout=0.5)

    assert released.state is SpawnedState.RELEASED
    assert released.exit_code is not None


def test_on_failure_restarts_a_crash_and_delivers_its_unread_mail_once(
    relay: Relay, tmp_path: Path
) -> None:
    out, mark = tmp_path / "out.txt", tmp_path / "crashed"
    relay.spawn("phoenix", command=program("crash-once", str(out), str(mark)), restart="on-failure")
    assert until(lambda: any(a.id == "phoenix" for a in relay.agents()), HUNG)
    boss = relay.register("boss")
    boss.send("phoenix", "before the crash")

    assert until(lambda: relay.spawned_agent("phoenix").restarts == 1, HUNG)
    assert until(lambda: "before the crash" in read(out), HUNG)
    boss.send("phoenix", "after the crash")
    assert until(lambda: "after the crash" in read(out), HUNG)
    assert read(out).count("before the crash") == 1
    agent = relay.spawned_agent("phoenix")
    assert agent.state is SpawnedState.RUNNING and agent.exit_code == 1
    relay.release("phoenix")


def test_always_restarts_a_clean_exit_and_no_does_not(relay: Relay) -> None:
    since = relay.last_event_id()
    relay.spawn("again", command=program("exit", "0"), restart="always", headless=True)
    relay.spawn("once", command=program("exit", "0"), headless=True)

    assert until(lambda: relay.spawned_agent("again").restarts >= 1, HUNG)
    assert until(lambda: relay.spawned_agent("once").state is SpawnedState.EXITED, HUNG)
    once = relay.spawned_agent("once")
    assert once.restarts == 0 and once.exit_code == 0 and once.last_lines == ["bye 0"]
    relay.release("again")
    events = list(relay.spawn_events(after=since, timeout=0))
    again = [e.kind for e in events if e.name == "again"]
    assert again[:3] == [SpawnEventKind.SPAWNED, SpawnEventKind.EXITED, SpawnEventKind.RESTARTED]
    assert again[-1] is SpawnEventKind.RELEASED
    assert [e.kind for e in events if e.name == "once"] == [
        SpawnEventKind.SPAWNED,
        SpawnEventKind.EXITED,
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_headless_agent_with_a_task_finishes_it_from_its_exit(relay: Relay) -> None:
    boss = relay.register("boss")
    relay.register("lister", pid=None)
    relay.register("breaker", pid=None)
    ok = boss.send("lister", "list files", claimable=True)
    bad = boss.send("breaker", "break it", claimable=True)
    assert ok.task_id is not None and bad.task_id is not None
    ok_id, bad_id = ok.task_id, bad.task_id

    relay.spawn(
        "lister", command=program("print", "three files"), headless=True, task_id=ok.task_id
    )
    relay.spawn("breaker", command=program("fail"), headless=True, task_id=bad.task_id)

    done = until(lambda: (t := relay.task(ok_id)).status == TaskStatus.DONE and t, HUNG)
    assert done and done.result == "three files"
    failed = until(lambda: (t := relay.task(bad_id)).status == TaskStatus.FAILED and t, HUNG)
    assert failed
    assert until(lambda: relay.get_agent("lister").status == "offline", HUNG)
    assert relay.logs("breaker") == ["step one", "it broke"]
    with pytest.raises(Conflict, match="headless"):
        relay.screen("breaker")


def test_duplicate_names_and_bad_input_are_refused(relay: Relay, tmp_path: Path) -> None:
    relay.spawn("solo", command=program("ignore-term"), headless=True)
    with pytest.raises(Conflict, match="runs already"):
        relay.spawn("solo", command=program("ignore-term"), headless=True)
    with pytest.raises(InvalidInput, match="exactly one"):
        relay.spawn("nothing")
    with pytest.raises(InvalidInput, match="not a folder"):
        relay.spawn("lost", command=program("echo", "x"), cwd=tmp_path / "missing")
    with pytest.raises(InvalidInput, match="not found"):
        relay.spawn("ghost", command=["no-such-program-here"])
    with pytest.raises(InvalidInput):
        relay.spawn("bad", command=program("echo", "x"), restart="sometimes")
    with pytest.raises(NotFound):
        relay.spawned_agent("nobody")
    relay.release("solo", timeout=0.5)


def test_spawning_without_the_warm_relay_is_one_line(
    relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DAEMON", "0")
    with Relay.open(dir=relay_dir) as relay, pytest.raises(RelayError) as caught:
        relay.spawn("x", command=program("echo", "x"))
    assert "warm local relay" in str(caught.value) and "\n" not in str(caught.value)
    assert warm.probe(relay_dir) is None


def test_a_relay_server_answers_501(tmp_path: Path) -> None:
    with live_server(tmp_path) as server, Relay.open(url=server.url) as relay:
        answer = httpx.get(f"{server.url}/v1/spawned", timeout=30.0, verify=UNUSED_TLS)
        assert answer.status_code == 501
        assert "warm local relay" in answer.json()["detail"]
        with pytest.raises(RelayError, match="warm local relay"):
            relay.spawned()


def test_preflight_reports_each_cli(relay: Relay) -> None:
    found = relay.preflight(["claude"], env={"PATH": "/nonexistent"})

    assert [p.cli for p in found] == ["claude"]
    assert not found[0].ok and found[0].error


def test_a_cli_that_is_not_there_is_refused_before_or_by_the_relay(relay: Relay) -> None:
    nowhere = {"PATH": "/nonexistent"}
    with pytest.raises(InvalidInput, match="claude"):
        relay.spawn("c1", cli="claude", env=nowhere)  # its preflight, here
    with pytest.raises(InvalidInput):
        relay.spawn("c2", cli="claude", env=nowhere, preflight=False)  # the relay's check
    with pytest.raises(InvalidInput):
        relay.spawn("c3", cli="no-such-cli", preflight=False)
    assert relay.spawned() == []
