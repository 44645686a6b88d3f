"""send, inbox (read vs peek, --wait), reply and thread."""

from __future__ import annotations

import pytest

from relaybus import Relay
from tests.cli.conftest import Cli


@pytest.mark.slow
def test_a_claimable_send_reaches_every_match_and_reading_marks_it_read(
    cli: Cli, relay: Relay
) -> None:
    sent = cli(
        '--as alice send --to cap:review --claimable --subject "Review PR 7" --priority high '
        '"diff attached"'
    )
    peeked, carol = cli.run_all(["--as bob inbox --peek --json", "--as carol inbox"])
    bob_unread_after_peek = relay.agent("bob").unread_count()
    read = cli("--as bob inbox --json")

    assert sent.code == 0, sent
    assert sent.out.strip() == "sent #1 to cap:review → bob, carol (task #1)"
    assert relay.task(1).title == "Review PR 7"
    assert peeked.code == 0, peeked
    [message] = peeked.json()
    assert message["id"] == 1 and message["sender"] == "alice" and message["task_id"] == 1
    assert message["priority"] == "high" and message["read_at"] is None
    assert bob_unread_after_peek == 1
    assert read.code == 0, read
    assert [m["id"] for m in read.json()] == [1]
    assert relay.agent("bob").unread_count() == 0
    assert carol.code == 0, carol
    assert carol.out.splitlines()[0].startswith("#1 alice → cap:review · high · task #1 · ")
    assert "  Subject: Review PR 7" in carol.out and "  diff attached" in carol.out
    assert relay.agent("carol").unread_count() == 0


def test_send_dash_reads_the_body_and_meta_is_stored(cli: Cli, relay: Relay) -> None:
    body = "line one\nline two — ünïcode"
    sent = cli("""--as alice send --to bob --meta '{"pr": 7}' --json -""", input=body + "\n")

    assert sent.code == 0, sent
    message = sent.json()
    assert message["body"] == body and message["meta"] == {"pr": 7}
    assert message["recipients"] == ["bob"]
    assert [m.body for m in relay.agent("bob").inbox()] == [body]


def test_reply_joins_the_thread_and_goes_to_the_sender(cli: Cli, relay: Relay) -> None:
    root = relay.agent("alice").send("bob", "can you review PR 7?")
    replied = cli(f"--as bob reply {root.id} LGTM --json")
    thread = cli(f"thread {root.id} --json")

    assert replied.code == 0, replied
    answer = replied.json()
    assert answer["reply_to"] == root.id and answer["thread_id"] == root.id
    assert answer["recipients"] == ["alice"]
    assert thread.code == 0, thread
    assert [(m["id"], m["sender"], m["body"]) for m in thread.json()] == [
        (root.id, "alice", "can you review PR 7?"),
        (answer["id"], "bob", "LGTM"),
    ]


def test_inbox_wait_returns_mail_sent_by_another_process(cli: Cli, relay: Relay) -> None:
    waiter = cli.popen("--as bob inbox --wait 30 --json")
    try:
        sent = cli('--as alice send --to bob "wake up" --json')
    finally:
        got = cli.finish(waiter, "inbox --wait")

    assert sent.code == 0, sent
    assert got.code == 0, got
    assert [m["body"] for m in got.json()] == ["wake up"]
    assert relay.agent("bob").unread_count() == 0


def test_inbox_wait_timeout_prints_nothing_and_exits_zero(cli: Cli, relay: Relay) -> None:
    as_json, human = cli.run_all(
        ["--as bob inbox --wait 0.2 --json", "--as carol inbox --wait 0.2"]
    )

    assert (as_json.code, as_json.json()) == (0, [])
    assert (human.code, human.out, human.err_lines) == (0, "", ["no new messages"])


def test_history_shows_a_late_agent_the_broadcasts_it_hears(cli: Cli, relay: Relay) -> None:
    alice = relay.agent("alice")
    alice.send("broadcast", "hello all")
    alice.send("broadcast", "deploy at 5", channel="deploys")
    alice.send("broadcast", "lunch?", channel="social")
    relay.register("late", channels=["deploys"])

    shown, listed, refused, everyone = cli.run_all(
        [
            "--as late history",
            "--as late history --json --limit 1",
            "--as late history --channel social",
            "--as late history --broadcast --json",
        ]
    )

    assert shown.code == 0, shown
    assert "deploy at 5" in shown.out and "hello all" in shown.out and "lunch?" not in shown.out
    assert [m["body"] for m in listed.json()] == ["deploy at 5"]
    assert refused.code != 0 and refused.out == ""
    assert (
        refused.err.strip() == "relaybus: error: late does not hear channel 'social': join it first"
    )
    assert [m["body"] for m in everyone.json()] == ["hello all"]
    assert relay.agent("late").unread_count() == 0
