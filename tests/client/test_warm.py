"""The warm local relay: started once for concurrent first callers, replaced when
killed or of another version, gone after its idle time, on a socket only its owner
can open. Real processes throughout: the relay is ``python -m relaybus.server.warm``
started by :func:`relaybus.client.warm.ensure`, and every test stops the relays it
started (by their pid, through :func:`relaybus.client.warm.stop`)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus.client import warm
from relaybus.errors import StoreError
from tests.support.poll import until

#: Generous: a relay starting on a loaded 2-core machine.
HUNG = 60.0


@pytest.fixture
def relay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / ".relay"
    folder.mkdir(mode=0o700)
    for name in list(os.environ):
        if name.startswith("RELAYBUS_"):
            monkeypatch.delenv(name)
    yield folder
    info = warm.probe(folder)
    if info is not None and info.pid is not None:
        os.kill(info.pid, signal.SIGTERM)
        wait_gone(info.pid)


def wait_gone(pid: int) -> None:
    assert until(lambda: not alive(pid), HUNG), f"pid {pid} did not exit"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent: it was started detached by a
    # process that may be gone) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def call(info: warm.WarmInfo, method: str, target: str, body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    status, answer = warm.request(info.socket, method, target, body=data, headers=headers)
    assert status < 300, (status, answer)
    return json.loads(answer)


def test_first_callers_at_once_start_one_relay_on_a_private_socket(relay_dir: Path) -> None:
    program = (
        "import json, sys; from pathlib import Path; from relaybus.client import warm; "
        "print(json.dumps(warm.ensure(Path(sys.argv[1])).to_json()))"
    )
    callers = [
        subprocess.Popen(
            [sys.executable, "-c", program, str(relay_dir)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    found = [json.loads(p.communicate(timeout=HUNG)[0]) for p in callers]
    assert {f["pid"] for f in found} == {found[0]["pid"]}
    assert all(p.returncode == 0 for p in callers)
    socket_file = Path(found[0]["socket"])
    assert socket_file == relay_dir / "relay.sock"
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(socket_file.stat().st_mode)
    log = (relay_dir / "relay.log").read_text(encoding="utf-8")
    assert log.count("relaybus: warm relay (pid") == 1


def test_a_killed_relay_is_replaced_by_the_next_caller_and_nothing_acknowledged_is_lost(
    relay_dir: Path,
) -> None:
    first = warm.ensure(relay_dir)
    call(first, "POST", "/v1/agents", {"id": "alice"})
    call(first, "POST", "/v1/agents", {"id": "bob"})
    sent = [
        call(first, "POST", "/v1/messages", {"sender": "alice", "to": "bob", "body": f"m{n}"})
        for n in range(5)
    ]
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    wait_gone(first.pid)
    assert first.socket.exists()  # a killed relay leaves its socket file: stale
    assert warm.probe(relay_dir) is None
    second = warm.ensure(relay_dir)
    assert second.pid != first.pid
    inbox = call(second, "GET", "/v1/agents/bob/inbox?unread_only=false&newest_first=false")
    assert isinstance(inbox, list)
    assert [m["id"] for m in inbox] == [m["id"] for m in sent]  # type: ignore[index]


def test_a_stale_socket_file_is_removed_and_a_relay_started(relay_dir: Path) -> None:
    import socket

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(relay_dir / "relay.sock"))
    stale.close()  # bound, never listening: connecting is refused
    assert warm.probe(relay_dir) is None
    info = warm.ensure(relay_dir)
    assert call(info, "GET", "/v1/agents") == []


def test_a_relay_of_another_version_is_stopped_and_replaced(
    relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = warm.ensure(relay_dir)
    monkeypatch.setattr(warm, "__version__", "9.9.9")
    with pytest.raises(StoreError, match=r"is relaybus .*, but this is relaybus 9\.9\.9"):
        warm.ensure(relay_dir)
    assert old.pid is not None
    wait_gone(old.pid)
    new = warm.probe(relay_dir)
    assert new is not None and new.pid != old.pid


def test_a_stopped_relay_has_let_go_of_its_folder_when_stop_returns(relay_dir: Path) -> None:
    # It stops answering before it has closed its store and exited: a relay started
    # in that gap would find the folder taken and exit (a version replacement did).
    first = warm.ensure(relay_dir)
    assert warm.stop(relay_dir, first)
    fd = os.open(relay_dir / warm.OWNER_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while held
    finally:
        os.close(fd)
    second = warm.ensure(relay_dir)
    assert second.pid != first.pid


def test_the_relay_exits_after_its_idle_time_and_removes_its_socket(
    relay_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_DAEMON_IDLE_SECONDS", "1")
    info = warm.ensure(relay_dir)
    assert info.pid is not None
    wait_gone(info.pid)
    assert not info.socket.exists()
    assert "idle for 1s: exiting" in (relay_dir / "relay.log").read_text(encoding="utf-8")


def test_a_second_relay_for_the_same_folder_exits_at_once(relay_dir: Path) -> None:
    info = warm.ensure(relay_dir)
    second = subprocess.run(
        [sys.executable, "-m", "relaybus.server.warm"],
        env={**os.environ, "RELAYBUS_DIR": str(relay_dir)},
        capture_output=True,
        text=True,
        timeout=HUNG,
        check=False,
    )
    assert second.returncode == 3
    assert "another warm relay serves this folder" in second.stdout
    assert warm.probe(relay_dir) == info


def start_and_kill_the_starter(relay_dir: Path) -> None:
    """Start a relay from a process killed once the relay holds its folder, before it
    answers (a Ctrl-C on the first command, a `relaybus mcp` closed at once)."""
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from relaybus.client import warm; warm.ensure(Path(sys.argv[1]))", str(relay_dir)]
    )  # fmt: skip
    try:
        assert until(lambda: warm.held(relay_dir), HUNG, every=0.002), "no relay took the folder"
        assert warm.probe(relay_dir) is None  # holding its folder, not answering yet
    finally:
        starter.kill()
        starter.wait()


def test_a_relay_still_starting_when_its_starter_dies_is_waited_for_not_replaced(
    relay_dir: Path,
) -> None:
    # The next caller must take the relay's socket for a live one, not a stale one.
    start_and_kill_the_starter(relay_dir)

    info = warm.ensure(relay_dir)

    assert warm.probe(relay_dir) == info
    assert "another warm relay serves this folder" not in warm.log_path(relay_dir).read_text()


def test_stop_waits_for_a_relay_still_starting_and_stops_it(relay_dir: Path) -> None:
    start_and_kill_the_starter(relay_dir)

    assert warm.stop(relay_dir)

    assert warm.probe(relay_dir) is None and not warm.held(relay_dir)


def test_a_folder_too_deep_for_a_unix_socket_gets_one_under_tmp(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 20] * 6, ".relay")
    path = warm.socket_path(deep)
    assert len(os.fsencode(path)) <= warm.MAX_SOCKET_PATH
    assert path.parent.name == f"relaybus-{os.getuid()}"
    assert warm.socket_path(deep) == path  # the same for every caller


def test_a_relay_too_deep_for_its_socket_is_found_by_callers_of_any_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relay's socket then lives in the user's runtime folder; a caller whose TMPDIR
    # differs from the starter's (macOS gives each login its own, MCP clients drop it)
    # must still find that relay, not start a second one that cannot own the folder.
    for name in list(os.environ):
        if name.startswith("RELAYBUS_"):
            monkeypatch.delenv(name)
    runtime = Path(tempfile.mkdtemp(prefix="rbw-", dir="/tmp"))
    monkeypatch.setenv("RELAYBUS_TMPDIR", str(runtime))  # this test's own, short
    deep = tmp_path.joinpath(*["d" * 20] * 6, ".relay")
    deep.mkdir(parents=True, mode=0o700)
    program = (
        "import json, sys; from pathlib import Path; from relaybus.client import warm; "
        "print(json.dumps(warm.ensure(Path(sys.argv[1])).to_json()))"
    )
    found = []
    try:
        for tmpdir in (str(tmp_path), None):
            env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
            if tmpdir is not None:
                env["TMPDIR"] = tmpdir
            done = subprocess.run(
                [sys.executable, "-c", program, str(deep)],
                env=env,
                capture_output=True,
                text=True,
                timeout=HUNG,
                check=True,
            )
            found.append(json.loads(done.stdout))
        assert found[0]["pid"] == found[1]["pid"]  # one relay, found by both
        assert found[0]["socket"] == str(
            runtime / f"relaybus-{os.getuid()}" / Path(found[0]["socket"]).name
        )
        assert stat.S_IMODE(os.stat(runtime / f"relaybus-{os.getuid()}").st_mode) == 0o700
    finally:
        info = warm.probe(deep)
        if info is not None and info.pid is not None:
            os.kill(info.pid, signal.SIGTERM)
            wait_gone(info.pid)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.parametrize(
    ("value", "off"), [("0", True), ("false", True), ("off", True), ("1", False), ("", False)]
)
def test_relaybus_daemon_turns_the_warm_relay_off(value: str, off: bool) -> None:
    assert warm.disabled({"RELAYBUS_DAEMON": value}) is off
