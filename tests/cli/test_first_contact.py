"""What a new user meets first: bare ``relaybus``, thread reading, task updates,
inbox JSON, and a task's meta."""

from __future__ import annotations

import pytest

from relaybus import Relay
from tests.cli.conftest import Cli


@pytest.fixture
def cli(cli_here: Cli) -> Cli:
    """The CLI in the test's process: these tests check what the commands print and do to
    the relay (the processes themselves are tested in test_in_process.py and elsewhere)."""
    return cli_here


@pytest.mark.parametrize("words", ["", "tmux"], ids=["relaybus", "relaybus tmux"])
def test_a_group_without_a_command_prints_its_help_and_exits_0(cli: Cli, words: str) -> None:
    done = cli(words)

    assert done.code == 0, done
    assert done.err == ""
    lines = done.out.splitlines()
    assert lines[0].startswith(f"Usage: relaybus {words}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in lines
    assert len(lines) > 10  # the help as written, not squashed into one line


def test_thread_marks_the_callers_unread_messages_of_the_thread_read(
    cli: Cli, relay: Relay
) -> None:
    alice, bob = relay.agent("alice"), relay.agent("bob")
    root = alice.send("bob", "first")
    bob.reply(root, "second")
    answer = alice.send("bob", "third", reply_to=root.id)
    elsewhere = alice.send("bob", "another thread")

    peeked = cli(f"--as bob thread {root.id} --peek --json")
    unread_after_peek = bob.unread_count()
    read = cli(f"--as bob thread {answer.id} --json")

    assert peeked.code == 0 and read.code == 0, (peeked, read)
    assert [m["body"] for m in peeked.json()] == ["first", "second", "third"]
    assert read.json() == peeked.json()
    assert unread_after_peek == 3
    assert [m.id for m in bob.inbox()] == [elsewhere.id]  # only the other thread is unread
    assert relay.deliveries(root.id)[0].read_at is not None


def test_thread_without_an_agent_only_looks(cli: Cli, relay: Relay) -> None:
    root = relay.agent("alice").send("bob", "first")

    assert cli(f"thread {root.id}").code == 0
    assert relay.agent("bob").unread_count() == 1


def test_a_task_update_prints_what_it_changed_not_an_old_note(cli: Cli, relay: Relay) -> None:
    task_id = relay.agent("alice").send("bob", "PR 7", claimable=True).task_id
    assert task_id is not None
    relay.agent("bob").claim(task_id)
    noted = cli(f'--as bob task {task_id} --progress 50 --note "reading the diff"')
    done = cli(f'--as bob task {task_id} --status done --result "LGTM"')
    blocked_task = relay.agent("alice").send("bob", "PR 8", claimable=True).task_id
    assert blocked_task is not None
    relay.agent("bob").claim(blocked_task)
    blocked = cli(f"--as bob task {blocked_task} --status blocked")

    assert noted.out == f"task #{task_id} is in_progress 50% (reading the diff)\n"
    assert done.out == f"task #{task_id} is done 100%; result: LGTM\n"
    assert blocked.out == f"task #{blocked_task} is blocked\n"


@pytest.mark.parametrize("wait", ["", "--wait 30"], ids=["read", "wait"])
def test_inbox_json_shows_the_recipients_and_the_read_state_it_left(
    cli: Cli, relay: Relay, wait: str
) -> None:
    sent = relay.agent("alice").send("cap:review", "who can review?")

    done = cli(f"--as bob inbox --json {wait}")

    assert done.code == 0, done
    [shown] = done.json()
    assert shown["id"] == sent.id
    assert shown["recipients"] == ["bob", "carol"]
    assert shown["read_at"] is not None and shown["delivered_at"] is not None
    assert relay.agent("bob").unread_count() == 0


def test_inbox_peek_json_leaves_the_message_unread(cli: Cli, relay: Relay) -> None:
    relay.agent("alice").send("bob", "hi")

    [shown] = cli("--as bob inbox --peek --json").json()

    assert shown["recipients"] == ["bob"]
    assert shown["read_at"] is None
    assert relay.agent("bob").unread_count() == 1


def test_a_claimable_messages_task_shows_the_messages_meta(cli: Cli, relay: Relay) -> None:
    sent = cli("""--as alice send --to bob --claimable --meta '{"pr": 7, "repo": "api"}' "PR 7" """)
    task_id = sent.out.split("task #")[1].rstrip(")\n")

    shown = cli(f"task {task_id}")
    as_json = cli(f"task {task_id} --json").json()

    assert sent.code == 0, sent
    assert 'meta      {"pr": 7, "repo": "api"}' in shown.out.splitlines()
    assert as_json["meta"] == {"pr": 7, "repo": "api"}
