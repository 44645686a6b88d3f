"""CLI commands through the warm local relay (``RELAYBUS_DAEMON`` unset): the first
commands start one relay, a killed relay is replaced by the next command with
nothing acknowledged lost, every command prints what it prints in-process, and
``RELAYBUS_DAEMON=0`` never starts one. Real ``relaybus`` processes and a real relay
on its Unix socket; every test stops the relays it started (by pid)."""

from __future__ import annotations

import difflib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.client import warm
from tests.cli.conftest import Cli
from tests.client.test_warm import wait_gone
from tests.support.template import seed_sqlite


def warm_cli(root: Path) -> Cli:
    """A CLI on ``root/.relay`` with the warm relay on (the suite turns it off)."""
    cli = Cli(root / ".relay", root)
    cli.env.pop("RELAYBUS_DAEMON", None)
    return cli


def seed(cli: Cli) -> None:
    """alice (tagged backend), bob and carol (capability review), as tests/cli/conftest.py."""
    seed_sqlite(cli.relay_dir / "relay.db")
    with Relay.open(dir=cli.relay_dir) as relay:
        relay.register("alice", tags=["backend"], pid=None)
        relay.register("bob", capabilities=["review"], pid=None)
        relay.register("carol", capabilities=["review"], label="test writer", pid=None)


def relay_pid(cli: Cli) -> int | None:
    info = warm.probe(cli.relay_dir)
    return None if info is None else info.pid


def stop_relay(relay_dir: Path) -> None:
    """Stop the warm relay of ``relay_dir`` if one runs, and wait until it is gone."""
    info = warm.probe(relay_dir)
    if info is not None and info.pid is not None:
        os.kill(info.pid, signal.SIGTERM)
        wait_gone(info.pid)


@pytest.fixture
def on(tmp_path: Path) -> Iterator[Cli]:
    """The CLI with the warm relay on, on a relay with alice, bob and carol."""
    cli = warm_cli(tmp_path / "warm")
    seed(cli)
    yield cli
    stop_relay(cli.relay_dir)


def starts(cli: Cli) -> int:
    """How many warm relays started on ``cli``'s folder (lines in its log)."""
    log = cli.relay_dir / "relay.log"
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    return text.count("relaybus: warm relay (pid")


def test_first_commands_at_once_start_one_warm_relay(on: Cli) -> None:
    assert relay_pid(on) is None
    results = on.run_all(
        ["agents", "--as bob inbox --peek", "tasks", "--as alice send --to bob hi", "agents"]
    )
    assert all(r.code == 0 for r in results), results
    assert relay_pid(on) is not None
    assert starts(on) == 1
    log = (on.relay_dir / "relay.log").read_text(encoding="utf-8")
    assert "another warm relay serves this folder" not in log
    assert "POST /v1/messages" in log  # the send went through it


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_who_the_first_caller_is_stays_out_of_the_relays_environment(on: Cli) -> None:
    caller = {name: "x" for name in warm.CALLER_VARIABLES if name != "RELAYBUS_URL"}
    caller.update(
        RELAYBUS_AGENT="alice",
        RELAYBUS_EPOCH="1",
        RELAYBUS_WORKSPACE="default",
        RELAYBUS_HOST="127.0.0.1",
        RELAYBUS_PORT="4850",
        RELAYBUS_TOOL="claude",
    )
    result = on("--as bob inbox --peek", env=caller)
    assert result.code == 0, result
    pid = relay_pid(on)
    assert pid is not None
    with open(f"/proc/{pid}/environ", "rb") as f:
        names = {entry.partition(b"=")[0].decode() for entry in f.read().split(b"\0")}
    assert names & set(warm.CALLER_VARIABLES) == set()
    assert "RELAYBUS_DIR" in names


def test_a_killed_warm_relay_is_replaced_by_the_next_command_and_nothing_acknowledged_is_lost(
    on: Cli,
) -> None:
    sent = [on(f"--as alice send --to bob m{n} --json").json()["id"] for n in range(3)]
    first = relay_pid(on)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_gone(first)

    after = on("--as alice send --to bob after --json")

    assert after.code == 0, after
    second = relay_pid(on)
    assert second is not None and second != first
    inbox = on("--as bob inbox --peek --json").json()
    assert [m["id"] for m in reversed(inbox)] == [*sent, after.json()["id"]]
    with Relay.open(dir=on.relay_dir) as relay:  # in the file, not only in the relay
        bodies = [m.body for m in relay.agent("bob").inbox(newest_first=False)]
    assert bodies == ["m0", "m1", "m2", "after"]


def test_a_long_poll_through_the_warm_relay_returns_the_mail_sent_meanwhile(on: Cli) -> None:
    assert on("--as alice send --to bob first").code == 0  # the relay runs from here
    assert on("--as bob inbox").code == 0  # read: the wait below is for new mail only
    waiting = on.popen("--as bob inbox --wait 60 --json")
    sent = on("--as alice send --to bob 'wake up' --json")
    woken = Cli.finish(waiting, "inbox --wait")
    assert woken.code == 0, woken
    assert [m["id"] for m in woken.json()] == [sent.json()["id"]]


#: A session of commands: each runs through the warm relay and in-process on a relay
#: seeded alike, and must print the same (times aside) with the same exit code. Not
#: ``events``: the warm relay runs the server's sweeps, which log events of their own
#: (``relay.pruned`` at its start).
SESSION = [
    "agents",
    "agents --json",
    "agents --cap review --json",
    "register dave --tag web --label 'new one' --json",
    "--as alice send --to bob 'the build is red' --subject ci",
    "--as alice send --to cap:review 'review PR 7' --claimable --json",
    "--as alice send --to tag:web --channel ops 'deploy at 5' --json",
    "--as bob inbox --peek",
    "--as bob inbox --json",
    "--as bob inbox",
    "--as bob reply 1 'looking' --json",
    "thread 1",
    "thread 1 --json",
    "--as carol claim 2 --json",
    "--as bob claim 2",
    "tasks",
    "tasks --json",
    "task 1 --json",
    "--as carol task 1 --status in_progress --progress 50",
    "--as carol release 1",
    "--as carol heartbeat --status busy --json",
    "status 1 --json",
    "status 1",
    "--as dave unregister --json",
    "--as nobody inbox",
    "--as alice send --to nobody hi",
    "--as alice send --to tag:nothing hi --json",
    "--as alice --epoch 7 send --to bob stale",
    "--as bob reply 999 hi",
    "task 999",
    "thread 999 --json",
    "inbox",
    "--as alice send --to bob --meta '[1]' hi",
    "agents --online",
    "agents --status busy --json",
    "--as bob inbox --all --oldest-first --limit 2",
    "--as bob inbox --wait 0 --json",
    "--as carol tasks --json",
    "--as carol tasks --status open",
    "status 1 --wait read --timeout 0",
    "status 999",
    "--as bob claim 999 --json",
    "--as bob release 1",
    "--as alice --epoch 7 inbox --peek --json",
    "prune --json",
]

#: What differs between two runs of the same session: times and random ids.
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "TIME"),
    (re.compile(r"\b\d\d:\d\d(:\d\d)?\b"), "HH:MM"),
    # with the padding after it: "now" and "1s ago" size a table's column differently
    (re.compile(r"\b(now|\d+[smhd] ago)\b *"), "AGO "),
    (re.compile(r"\b[0-9a-f]{32}\b"), "UUID"),  # instance ids
]


def steady(text: str, cli: Cli) -> str:
    """``text`` with the times, random ids and ``cli``'s folder made constant."""
    text = text.replace(str(cli.cwd), "ROOT")
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.slow
def test_commands_through_the_warm_relay_print_what_they_print_in_process(
    on: Cli, tmp_path: Path
) -> None:
    off = Cli(tmp_path / "off" / ".relay", tmp_path / "off")
    off.env["RELAYBUS_DAEMON"] = "0"
    seed(off)
    for command in SESSION:
        # The in-process side runs in the test's process: tests/cli/test_in_process.py
        # holds that path to the real process.
        through, local = on(command), off.in_process(command)
        seen = [str(through.code), *steady(through.out + through.err, on).splitlines()]
        expected = [str(local.code), *steady(local.out + local.err, off).splitlines()]
        assert seen == expected, "\n".join(
            difflib.unified_diff(expected, seen, "in-process", "warm", lineterm="")
        )
    assert relay_pid(on) is not None and starts(on) == 1
    assert relay_pid(off) is None


def test_a_command_that_needs_a_relay_finds_none_and_starts_nothing(tmp_path: Path) -> None:
    cli = warm_cli(tmp_path)
    for command in ("agents", "--as bob inbox", "--as alice send --to bob hi"):
        result = cli(command)
        assert result.code == 2, result
        assert result.err == "relaybus: error: no relay here: run `relaybus init`\n"
    assert not cli.relay_dir.exists()


def test_register_creates_the_relay_then_uses_the_warm_relay(tmp_path: Path) -> None:
    cli = warm_cli(tmp_path)
    try:
        first = cli("register alice")
        assert first.code == 0, first
        assert first.out.startswith("registered alice (epoch 1)\n")
        assert (cli.relay_dir / ".gitignore").exists()
        assert relay_pid(cli) is not None
        assert "POST /v1/agents" in (cli.relay_dir / "relay.log").read_text(encoding="utf-8")
    finally:
        stop_relay(cli.relay_dir)


def test_with_relaybus_daemon_0_no_command_starts_a_warm_relay(on: Cli) -> None:
    off = {"RELAYBUS_DAEMON": "0"}
    for command in ("agents", "--as alice send --to bob hi", "--as bob inbox", "register eve"):
        result = on(command, env=off)
        assert result.code == 0, result
    assert relay_pid(on) is None
    assert not (on.relay_dir / "relay.sock").exists()
    assert on("daemon status").code == 3


def test_commands_that_work_on_the_store_itself_stay_in_process(on: Cli) -> None:
    for command in ("init --json", "migrate --json"):
        result = on(command)
        assert result.code == 0, result
        assert result.json()["path"] == str(on.relay_dir / "relay.db")
    assert relay_pid(on) is None
