"""init, migrate, prune, events, --help and --version."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from relaybus import Relay, __version__
from relaybus.cli import agents, cli, messages, status, tasks
from relaybus.client import warm_json
from relaybus.models import AgentStatus, DeliveryState, Priority, TaskStatus
from relaybus.store.migrate import HEAD
from tests.cli.conftest import Cli
from tests.support.pg import drop_database, fresh_database_url


def test_init_creates_the_relay_and_migrate_reports_its_revision(cli: Cli) -> None:
    assert not cli.relay_dir.exists()
    init = cli("init")
    migrate = cli("--json migrate")

    db = cli.relay_dir / "relay.db"
    assert init.code == 0, init
    assert db.is_file()
    assert init.out.strip() == f"initialized relay at {db} (schema {HEAD})"
    assert migrate.code == 0, migrate
    assert migrate.json() == {"path": str(db), "database": f"sqlite:///{db}", "revision": HEAD}


def test_help_explains_targets_and_does_not_touch_the_store(cli: Cli) -> None:
    result = cli("--help")

    assert result.code == 0, result
    for teaches in ("tag:backend", "cap:review", "label:", "broadcast", "--as", ".relay/relay.db"):
        assert teaches in result.out
    assert not cli.relay_dir.exists()


#: Commands without --json: those that run until stopped and print a log, not a
#: result (serve, mcp), and the hook, whose output is always Claude Code's JSON.
LONG_RUNNING = {"serve", "mcp", "hook"}


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_with_a_summary_and_json(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])

    assert result.exit_code == 0, result.output
    assert cli.commands[name].get_short_help_str(limit=60).strip()
    assert ("--json" in result.output) != (name in LONG_RUNNING)


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])

    assert result.exit_code == 0
    assert __version__ in result.output


def test_literal_choices_match_the_model_enums() -> None:
    assert agents.AGENT_STATUSES == tuple(s.value for s in AgentStatus)
    assert messages.PRIORITIES == tuple(p.value for p in Priority)
    assert tasks.TASK_STATUSES == tuple(s.value for s in TaskStatus)
    assert set(tasks.UPDATE_STATUSES) < set(tasks.TASK_STATUSES)
    assert status.STATES == warm_json.DELIVERY_STATES == tuple(s.value for s in DeliveryState)


def test_events_and_prune_report_as_json(cli: Cli, relay: Relay) -> None:
    relay.agent("alice").send("bob", "old news")
    events = cli("events --since 2 --limit 2 --json")
    prune = cli("prune --message-days 0 --json")

    assert events.code == 0, events
    assert [(e["id"], e["kind"]) for e in events.json()] == [
        (3, "agent.registered"),
        (4, "message.sent"),
    ]
    assert prune.code == 0, prune
    report = prune.json()
    assert report["messages"] == 1 and report["deliveries"] == 1
    assert relay.agent("bob").inbox() == []


def test_migrate_takes_a_postgresql_database_url_and_migrates_it_once(cli: Cli) -> None:
    url = fresh_database_url()
    try:
        first, second = cli.run_all([f"--json migrate --database {url}"] * 2)  # replicas at once
        assert first.code == 0 and second.code == 0, (first, second)
        assert first.json()["revision"] == second.json()["revision"] == HEAD
        assert not cli.relay_dir.exists()  # --database beats the relay folder
    finally:
        drop_database(url)


def test_migrate_against_an_unreachable_database_is_one_line_and_exit_1(cli: Cli) -> None:
    result = cli("migrate --database postgresql://relay:secret@127.0.0.1:9/relay")
    assert result.code == 1
    assert result.err.startswith("relaybus: error: cannot open postgresql://relay:***@127.0.0.1:9")
    assert len(result.err.strip().splitlines()) == 1
    assert "secret" not in result.err
