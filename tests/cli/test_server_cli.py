"""Every CLI command family against a real relay server (RELAYBUS_URL), as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from relaybus.models import TaskStatus
from relaybus.service.tokens import hash_token
from tests.cli.conftest import Cli
from tests.cli.serverutil import cli_on_server, register_with_token
from tests.cli.test_errors import CASES
from tests.support.live import free_port


def test_register_prints_a_token_that_acts_as_that_agent_only(tmp_path: Path) -> None:
    with cli_on_server(tmp_path) as cli:
        human, machine = cli.run_all(["register alice --cap review", "--json register bob"])
        alice_token = human.out.splitlines()[-1].split()[1]
        bob_token = machine.json()["token"]
        as_bob = cli.as_token(bob_token)
        sent = cli("--as bob send --to alice hello", env=as_bob)
        before = cli.snapshot()
        forged = cli("--as alice send --to bob forged", env=as_bob)
        after = cli.snapshot()
        credential = cli.server.service.authenticate(hash_token(alice_token))

    assert human.code == 0, human
    assert human.out.splitlines() == [
        "registered alice (epoch 1)",
        "act as it with --as alice, or: export RELAYBUS_AGENT=alice",
        f"token: {alice_token} (export RELAYBUS_TOKEN={alice_token} to act as alice)",
    ]
    assert alice_token.startswith("rb_")
    assert credential is not None and credential.agent_id == "alice"
    assert machine.code == 0, machine
    assert machine.json()["id"] == "bob" and bob_token.startswith("rb_")
    assert sent.code == 0, sent
    assert sent.out.strip() == "sent #1 to alice"
    assert forged.code != 0 and forged.out == "", forged
    assert forged.err_lines == ["relaybus: error: this token acts as 'bob' only, not as 'alice'"]
    assert after == before


@pytest.mark.slow
def test_every_command_family_works_against_a_server(tmp_path: Path) -> None:
    with cli_on_server(tmp_path) as cli:
        registered = cli.run_all(
            [
                "register alice --tag backend",
                "register bob --cap review",
                "register carol --cap review",
            ]
        )
        sent = cli('--as alice send --to cap:review --claimable --subject "Review PR 7" "diff"')
        # The registrations, the send and the long-poll are processes; the other calls check
        # what each command family prints, in the test's process (the same entry point).
        here = cli.in_process
        peeked, carol_reads = here("--as bob inbox --peek --json"), here("--as carol inbox")
        claimed = here("--as bob claim 1 --json")
        lost, renewed = here("--as carol claim 1"), here("--as bob claim 1 --lease 900 --json")
        progress = here('--as bob task 1 --progress 50 --note "tests pass"')
        waiting = cli.popen("--as alice inbox --wait 60 --json")  # a long-poll, woken by the reply
        replied = here("--as bob reply 1 LGTM --json")
        woke = cli.finish(waiting, "--as alice inbox --wait 60 --json")
        thread, shown = here("thread 1 --json"), here("task 1 --json")
        released = here("--as bob release 1")
        beat = here("--as alice heartbeat --status busy")
        events, gone = here("events --json"), here("--as carol unregister")
        left, tasks = here("agents --json"), here("tasks --json")
        service = cli.server.service
        task = service.get_task(1)
        carol_gone = [a.id for a in service.list_agents()]

    for result in (*registered, sent, peeked, carol_reads, claimed, renewed, progress):
        assert result.code == 0, result
    for result in (replied, woke, thread, shown, released, beat, events, gone, left, tasks):
        assert result.code == 0, result
    assert sent.out.strip() == "sent #1 to cap:review → bob, carol (task #1)"
    [unread] = peeked.json()
    assert unread["id"] == 1 and unread["read_at"] is None and unread["task_id"] == 1
    assert carol_reads.out.splitlines()[0].startswith("#1 alice → cap:review · task #1 · ")
    assert "  Subject: Review PR 7" in carol_reads.out
    assert claimed.json()["assignee"] == "bob"
    assert lost.code == 1 and len(lost.err_lines) == 1 and "bob" in lost.err, lost
    assert renewed.json()["assignee"] == "bob"
    lease = [datetime.fromisoformat(r.json()["lease_expires_at"]) for r in (claimed, renewed)]
    assert lease[1] > lease[0]
    assert progress.out.strip() == "task #1 is in_progress 50% (tests pass)"
    answer = replied.json()
    assert answer["reply_to"] == 1 and answer["recipients"] == ["alice"]
    assert [m["id"] for m in woke.json()] == [answer["id"]]
    assert [m["id"] for m in thread.json()] == [1, answer["id"]]
    history = [e["kind"] for e in shown.json()["history"]]
    assert history[:3] == ["created", "claimed", "renewed"], history
    assert released.out.strip() == "released task #1; it is open again"
    assert beat.out.strip() == "alice is busy (epoch 1)"
    kinds = [e["kind"] for e in events.json()]
    for kind in (
        "agent.registered",
        "message.sent",
        "task.claimed",
        "task.renewed",
        "task.updated",
    ):
        assert kind in kinds
    assert gone.out.strip() == "unregistered carol"
    assert [a["id"] for a in left.json()] == ["alice", "bob"]
    assert [t["id"] for t in tasks.json()] == [1]
    assert task.status is TaskStatus.OPEN and task.assignee is None
    assert carol_gone == ["alice", "bob"]


def test_errors_over_a_server_are_the_embedded_ones_and_change_nothing(tmp_path: Path) -> None:
    cases = [case for case in CASES if not case.env]  # env: settings of the server, not the CLI
    with cli_on_server(tmp_path) as cli:
        service = cli.server.service
        for agent_id, caps in (("alice", []), ("bob", ["review"]), ("carol", ["review"])):
            service.register(agent_id, capabilities=caps)
        service.send("bob", "cap:review", "PR 7", claimable=True)  # task 1, open
        service.register("alice")  # a new instance: epoch 2 fences off epoch 1
        before = cli.snapshot()
        # What each error says, in the test's process; how a refusal leaves a real process
        # over a server is test_register_prints_a_token_that_acts_as_that_agent_only's.
        results = [(case, cli.in_process(case.command)) for case in cases]
        after = cli.snapshot()

    for case, result in results:
        assert result.code == case.code, result
        assert result.out == "", result
        assert len(result.err_lines) == 1, result
        assert result.err.startswith("relaybus: error: "), result
        assert case.says in result.err, result
    assert after == before


def test_admin_commands_over_a_server(tmp_path: Path) -> None:
    local_db = tmp_path / "local.db"
    with cli_on_server(tmp_path) as cli:
        token = register_with_token(cli.server, "bob")
        init, migrate, pruned = (
            cli.in_process(c) for c in ["init", "migrate", "prune --message-days 0 --json"]
        )
        refused = cli("prune", env=cli.as_token(token))
        local = cli(f"--database sqlite:///{local_db} --json migrate")
        url = cli.server.url

    assert init.code == 0, init
    assert init.out.strip() == f"using the relay server at {url} (workspace default)"
    assert migrate.code == 2 and migrate.out == "", migrate
    assert migrate.err_lines == [
        f"relaybus: error: migrate works on the database itself, not through the relay server "
        f"at {url}: run it where the database is, or pass --database URL (or --dir)"
    ]
    assert pruned.code == 0, pruned
    assert set(pruned.json()) == {"messages", "deliveries", "events", "agents", "workflow_runs"}
    assert refused.code == 1 and len(refused.err_lines) == 1 and "admin" in refused.err, refused
    # An explicit database beats RELAYBUS_URL.
    assert local.code == 0, local
    assert local.json()["path"] == str(local_db) and local_db.is_file()


def test_without_a_server_or_with_a_bad_token_every_call_fails_in_one_line(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / ".relay", tmp_path)
    del cli.env["RELAYBUS_DIR"]
    url = f"http://127.0.0.1:{free_port()}"
    nobody = {"RELAYBUS_URL": url}
    commands = ["agents", "--as bob inbox --wait 5", "watch --json"]
    down = [(c, cli.popen(c, env=nobody)) for c in commands]
    down.append((f"--url {url} thread 1", cli.popen(f"--url {url} thread 1")))
    results = [cli.finish(proc, c) for c, proc in down]
    with cli_on_server(tmp_path) as server_cli:
        bogus = server_cli("agents", env=server_cli.as_token("rb_not-a-token"))
        nameless = server_cli("agents", env=server_cli.as_token(None))

    for result in results:
        assert result.code == 1 and result.out == "", result
        assert len(result.err_lines) == 1, result
        assert f"cannot reach relay server at {url}" in result.err, result
    assert not (tmp_path / ".relay").exists()
    assert bogus.code == 1 and len(bogus.err_lines) == 1, bogus
    assert "token" in bogus.err, bogus
    assert nameless.code == 1 and len(nameless.err_lines) == 1, nameless


def test_help_does_not_import_the_network_or_server_stack() -> None:
    probe = (
        "import sys\n"
        "from relaybus.cli import cli\n"
        "for args in (['--help'], ['watch', '--help'], ['demo', '--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='relaybus', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'httpx', 'fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'rich'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, encoding="utf-8", timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
    assert "Usage: relaybus watch [OPTIONS]" in done.stdout
    assert "Usage: relaybus demo [OPTIONS]" in done.stdout and "--server" in done.stdout
