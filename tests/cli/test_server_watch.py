"""``relaybus watch``: the live stream of a relay server (and the embedded log) in the
terminal, ended by Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relaybus import Relay
from relaybus.cli.watch import AgentView, summary, with_message
from tests.cli.conftest import Cli
from tests.cli.serverutil import cli_on_server, register_with_token, tail

NAMES = ("alice", "bob", "carol")


def test_watch_json_prints_a_message_another_cli_call_sends_and_ctrl_c_exits_0(
    tmp_path: Path,
) -> None:
    with cli_on_server(tmp_path) as cli:
        service = cli.server.service
        service.register("alice")
        service.register("bob")
        since = service.last_event_id()
        with tail(cli, f"watch --json --since {since}") as watch:
            sent = cli('--as alice send --to bob --subject "PR 7" "please review"')
            event = watch.next_event(lambda e: e["kind"] == "message.sent")
            ended = watch.interrupt()

    assert sent.code == 0, sent
    assert event["id"] > since and event["agent_id"] == "alice"
    assert event["data"]["recipients"] == ["bob"]
    message = event["data"]["message"]
    assert (message["sender"], message["subject"], message["body"]) == (
        "alice",
        "PR 7",
        "please review",
    )
    assert ended.code == 0, ended
    assert ended.err == "", ended


def test_watch_as_an_agent_with_its_token_sees_only_what_it_may(tmp_path: Path) -> None:
    with cli_on_server(tmp_path) as cli:
        service = cli.server.service
        bob = register_with_token(cli.server, "bob")
        service.register("alice")
        service.register("carol")
        since = service.last_event_id()
        with tail(cli, f"watch --as bob --json --since {since}", env=cli.as_token(bob)) as watch:
            cli.run_all(
                ["--as alice send --to carol private", "--as alice send --to bob 'for bob'"]
            )
            event = watch.next_event(lambda e: e["kind"] == "message.sent")
            prying = cli("watch --as carol --json", env=cli.as_token(bob))

    assert event["data"]["message"]["body"] == "for bob"
    assert prying.code == 1 and prying.out == "", prying
    assert len(prying.err_lines) == 1 and "cannot watch as 'carol'" in prying.err, prying


def test_watch_on_the_embedded_store_prints_one_line_per_event(cli: Cli, relay: Relay) -> None:
    since = relay.last_event_id()
    with (
        tail(cli, f"watch --since {since}") as human,
        tail(cli, f"watch --json --since {since}") as machine,
    ):
        relay.agent("alice").send(
            "cap:review", "diff attached", subject="Review PR 7", claimable=True
        )
        line = human.next_line()
        while "message.sent" not in line:
            line = human.next_line()
        event = machine.next_event(lambda e: e["kind"] == "message.sent")

    time, kind, actor, text = line.split(maxsplit=3)
    assert (kind, actor) == ("message.sent", "alice")
    assert text.strip() == 'alice → bob, carol #1 "Review PR 7" (task #1)'
    assert event["data"]["message"]["body"] == "diff attached"  # as the server's stream has it
    assert human.seen[0].split()[1] == "task.created"


def test_an_agent_view_of_the_embedded_log_follows_the_servers_rule(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / ".relay") as relay:
        alice, bob, carol = (relay.register(a, capabilities=["review"]) for a in NAMES)
        dave = relay.register("dave")
        before = relay.last_event_id()
        alice.send("carol", "not for bob")
        offer = alice.send("cap:review", "review", claimable=True)  # offered to bob and carol
        assert offer.task_id is not None
        carol.claim(offer.task_id)
        dave.send("alice", "private")
        bob.update(status="busy")
        view = AgentView(relay, "bob")
        seen = [(e.kind, e.agent_id) for e in relay.events(since=before) if view.sees(e)]

    assert seen == [
        ("task.created", "alice"),
        ("message.sent", "alice"),
        ("task.claimed", "carol"),
        ("agent.updated", "bob"),
    ]


def test_summaries_name_the_actor_and_what_changed(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / ".relay") as relay:
        alice = relay.register("alice", label="author", tags=["backend"])
        bob = relay.register("bob", capabilities=["review"])
        root = alice.send("bob", "first line\nsecond line")
        bob.reply(root, "ok", priority="high")
        bob.read()
        task = alice.send("bob", "x", subject="Review", claimable=True).task_id
        assert task is not None
        bob.claim(task)
        bob.update_task(task, progress=40, note="reading")
        bob.update_task(task, status="done", result="merged")
        lines = [summary(with_message(relay, e)) for e in relay.events(since=0)]

    assert lines == [
        "registered (epoch 1, label 'author', tag:backend)",
        "registered (epoch 1, cap:review)",
        'alice → bob #1 "first line"',
        'bob → alice #2 "ok" (re #1, high)',
        "read #1",
        'created task #1 "Review" for bob',
        'alice → bob #3 "Review" (task #1)',
        lines[7],
        'task #1 claimed → in_progress 40% "reading"',
        'task #1 in_progress → done result: "merged"',
    ]
    assert lines[7].startswith("claimed task #1, lease until ")


def test_watch_reconnects_after_the_server_restarts_and_misses_nothing(tmp_path: Path) -> None:
    def sent(event: dict[str, Any]) -> bool:
        return bool(event["kind"] == "message.sent")

    with cli_on_server(tmp_path) as cli:
        server, service = cli.server, cli.server.service
        service.register("alice")
        service.register("bob")
        since = service.last_event_id()
        with tail(cli, f"watch --json --since {since}") as watch:
            service.send("alice", "bob", "before")
            bodies = [watch.next_event(sent)["data"]["message"]["body"]]
            server.stop()
            service.send("alice", "bob", "while down")  # straight into the store
            server.start()
            bodies.append(watch.next_event(sent)["data"]["message"]["body"])
            service.send("alice", "bob", "after")
            bodies.append(watch.next_event(sent)["data"]["message"]["body"])
            ended = watch.interrupt()

    assert bodies == ["before", "while down", "after"]
    assert ended.code == 0, ended
    assert [json.loads(line)["kind"] for line in ended.out.splitlines()].count("message.sent") == 3
    notes = ended.err_lines
    assert notes and all(n.startswith("relaybus: watch: event stream: ") for n in notes), ended
    assert "reconnecting in" in notes[0]
