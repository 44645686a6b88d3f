"""claim, task (show and update), release, tasks."""

from __future__ import annotations

import json

import pytest

from relaybus import Relay
from tests.cli.conftest import Cli


@pytest.fixture
def cli(cli_here: Cli) -> Cli:
    """The CLI in the test's process: these tests check what the commands print and do to
    the relay (the processes themselves are tested in test_in_process.py and elsewhere)."""
    return cli_here


@pytest.fixture
def task_id(relay: Relay) -> int:
    """An open review task announced to bob and carol."""
    msg = relay.agent("alice").send("cap:review", "PR 7", subject="Review PR 7", claimable=True)
    assert msg.task_id is not None
    return msg.task_id


def test_the_first_claimer_wins_and_the_second_exits_1_naming_the_holder(
    cli: Cli, relay: Relay, task_id: int
) -> None:
    won = cli(f"--as bob claim {task_id} --lease 120 --json")
    lost, lost_json = cli.run_all(
        [f"--as carol claim {task_id}", f"--as carol --json claim {task_id}"]
    )

    assert won.code == 0, won
    held = won.json()
    assert (held["id"], held["status"], held["assignee"]) == (task_id, "claimed", "bob")
    assert lost.code == 1, lost
    assert lost.out == ""
    assert lost.err_lines == [f"relaybus: error: task {task_id} is already claimed by bob"]
    assert lost_json.code == 1, lost_json
    [line] = lost_json.err_lines
    assert json.loads(line) == {
        "error": "conflict",
        "message": f"task {task_id} is already claimed by bob",
        "task": task_id,
        "holder": "bob",
    }
    assert relay.task(task_id).assignee == "bob"


def test_progress_and_status_updates_show_up_in_the_history(
    cli: Cli, relay: Relay, task_id: int
) -> None:
    relay.agent("bob").claim(task_id)
    progress = cli(f"--as bob task {task_id} --progress 50 --note halfway --json")
    done = cli(f"--as bob task {task_id} --status done --result merged")
    shown = cli(f"task {task_id} --json")

    assert progress.code == 0, progress
    assert (progress.json()["status"], progress.json()["progress"]) == ("in_progress", 50)
    assert done.code == 0, done
    assert done.out.strip() == f"task #{task_id} is done 100%; result: merged"  # not the old note
    assert shown.code == 0, shown
    task = shown.json()
    assert (task["id"], task["status"], task["result"]) == (task_id, "done", "merged")
    assert [(h["kind"], h["agent_id"], h["progress"], h["note"]) for h in task["history"]] == [
        ("created", "alice", None, None),
        ("claimed", "bob", None, None),
        ("in_progress", "bob", 50, "halfway"),
        ("done", "bob", None, "merged"),
    ]


def test_release_reopens_and_the_operator_cancels_without_as(
    cli: Cli, relay: Relay, task_id: int
) -> None:
    relay.agent("carol").claim(task_id)
    released = cli(f"--as carol release {task_id}")
    canceled = cli(f'task {task_id} --status canceled --note "not needed"')
    listed = cli("tasks --status canceled --json")

    assert released.code == 0, released
    assert released.out.strip() == f"released task #{task_id}; it is open again"
    assert canceled.code == 0, canceled
    assert [(t["id"], t["assignee"]) for t in listed.json()] == [(task_id, None)]
    assert relay.task_history(task_id)[-1].agent_id is None  # the operator, not an agent


def test_an_agent_lists_reads_and_claims_only_tasks_of_messages_it_may_see(
    cli: Cli, relay: Relay
) -> None:
    relay.register("dave")
    private = relay.agent("bob").send("carol", "launch code 42", subject="secret", claimable=True)
    assert private.task_id is not None
    hidden, missing = private.task_id, private.task_id + 1000
    before = cli.snapshot()
    listed, shown, absent, claimed, as_operator = cli.run_all(
        [
            "--as dave tasks --json",
            f"--as dave task {hidden}",
            f"--as dave task {missing}",
            f"--as dave claim {hidden}",
            "tasks --json",
        ]
    )

    assert listed.code == 0, listed
    assert listed.json() == []
    assert (shown.code, shown.err_lines) == (absent.code, [f"relaybus: error: no task {hidden}"])
    assert absent.err_lines == [f"relaybus: error: no task {missing}"]
    assert claimed.err_lines == [f"relaybus: error: no task {hidden}"]
    assert claimed.code == shown.code != 0
    assert "secret" not in listed.out + shown.out + shown.err + claimed.err
    assert cli.snapshot() == before
    assert [t["id"] for t in as_operator.json()] == [hidden]  # no --as: the workspace
    mine = cli(f"--as carol task {hidden} --json")
    assert mine.code == 0, mine
    assert mine.json()["title"] == "secret"


def test_task_create_opens_a_task_whose_link_and_meta_show_in_tasks_and_task(
    cli: Cli, relay: Relay
) -> None:
    created = cli(
        'task create "Rotate the staging keys" --to cap:review --url https://t.example/OPS-7 '
        '--meta \'{"ticket": "OPS-7"}\' --json'
    )
    bad = cli("task create x --to cap:review --meta '[1]'")

    assert created.code == 0, created
    task = created.json()
    assert (task["creator"], task["external_url"]) == ("relaybus", "https://t.example/OPS-7")
    listed, shown = cli.run_all(["tasks", f"task {task['id']}"])
    assert listed.code == 0, listed
    assert "LINK" in listed.out.upper() and "https://t.example/OPS-7" in listed.out
    assert shown.code == 0, shown
    assert "link      https://t.example/OPS-7" in shown.out
    assert '{"ticket": "OPS-7"}' in shown.out
    assert bad.code == 2 and bad.out == "" and len(bad.err.strip().splitlines()) == 1
    assert len(relay.tasks()) == 1
