"""``relaybus daemon``: status, start, stop and logs of the warm local relay, as the
real CLI; every test stops the relay it started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relaybus import Relay
from relaybus.client import warm
from tests.cli.conftest import Cli


@pytest.fixture
def started(cli: Cli, relay: Relay) -> Iterator[Cli]:
    """A CLI on an existing relay; the warm relay is stopped at the end."""
    yield cli
    warm.stop(cli.relay_dir)


def test_start_status_logs_and_stop(started: Cli) -> None:
    cli = started
    before = cli("daemon status")
    assert before.code == 3 and before.out.startswith("not running"), before
    start = cli("daemon start --json")
    assert start.code == 0, start
    pid = start.json()["pid"]
    status = cli("daemon status --json")
    assert status.code == 0 and status.json() == {**start.json(), "running": True}
    again = cli("daemon start")
    assert again.out.startswith(f"running: pid {pid},"), again
    logs = cli("daemon logs -n 50")
    assert logs.code == 0 and f"warm relay (pid {pid})" in logs.out
    stop = cli("daemon stop")
    assert stop.code == 0 and stop.out == "stopped\n", stop
    assert cli("daemon status").code == 3
    assert cli("daemon stop").out == "not running\n"


def test_without_a_relay_the_daemon_commands_say_so_and_start_nothing(cli: Cli) -> None:
    for command in ("daemon status", "daemon start", "daemon stop"):
        result = cli(command)
        assert result.code == 2, result
        assert result.err.startswith("relaybus: error: no relay here")
    assert not (cli.relay_dir / "relay.sock").exists()
