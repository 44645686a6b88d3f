"""``GET /v1/stream`` on a real server: pushes, visibility, resume, other processes,
auth refusals, heartbeats and shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from relaybus.service import hash_token
from tests.support.live import UNUSED_TLS, LiveServer, live_server

#: Seconds before a read counts as hung: far above any real push.
HUNG = 30.0
ADMIN = "admin-secret"


class Stream:
    """An open SSE stream: :attr:`ready` is its first frame's data."""

    def __init__(self, events: Iterator[ServerSentEvent], response: httpx.Response) -> None:
        self.events = events
        self.response = response
        first = next(events)
        assert first.event == "ready" and first.id in (None, "")
        self.ready: dict[str, Any] = json.loads(first.data)

    def take(self, count: int, kind: str = "message.sent") -> list[ServerSentEvent]:
        """The next ``count`` events of ``kind``, skipping other kinds."""
        found: list[ServerSentEvent] = []
        for sse in self.events:
            if sse.event == kind:
                found.append(sse)
                if len(found) == count:
                    return found
        raise AssertionError(f"the stream ended after {len(found)} {kind} events")

    def bodies(self, count: int) -> list[str]:
        """Bodies of the next ``count`` messages pushed."""
        return [json.loads(s.data)["data"]["message"]["body"] for s in self.take(count)]


@contextlib.contextmanager
def stream(
    srv: LiveServer,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Iterator[Stream]:
    """Connect to ``/v1/stream`` (status 200 checked) and read past the ready frame."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client:
        with connect_sse(client, "GET", f"{srv.url}/v1/stream", params=params, headers=sent) as src:
            assert src.response.status_code == 200, src.response.read()
            assert src.response.headers["content-type"].startswith("text/event-stream")
            yield Stream(src.iter_sse(), src.response)


def register(srv: LiveServer, *names: str) -> dict[str, str]:
    """Register agents with tokens; ``{name: token}``."""
    tokens = {}
    for name in names:
        tokens[name] = f"rb_test_{name}"
        srv.service.register(name, token_hash=hash_token(tokens[name]))
    return tokens


def test_a_message_is_pushed_to_the_recipient_with_the_full_message_and_its_recipients_once(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        with stream(srv, agent="bob") as bob:
            sent = srv.service.send("alice", "bob", "hello bob", subject="hi")
            (sse,) = bob.take(1)
    event = json.loads(sse.data)
    assert sse.id == str(event["id"])
    assert event["kind"] == "message.sent" and event["agent_id"] == "alice"
    assert event["data"]["message"]["id"] == sent.id
    assert event["data"]["message"]["subject"] == "hi"
    # The recipients travel once per frame, as the event's own data.
    assert event["data"]["recipients"] == ["bob"]
    assert "recipients" not in event["data"]["message"]


def test_an_agent_sees_what_it_sent_and_received_and_nothing_else(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob", "carol")
        with (
            stream(srv, tokens["alice"]) as alice,
            stream(srv, tokens["bob"]) as bob,
            stream(srv, tokens["carol"]) as carol,
            stream(srv, ADMIN) as admin,
        ):
            srv.service.send("alice", "bob", "one for bob")
            srv.service.send("alice", "carol", "one for carol")
            srv.service.send("carol", "bob", "bob again")
            assert alice.bodies(2) == ["one for bob", "one for carol"]
            assert bob.bodies(2) == ["one for bob", "bob again"]
            assert carol.bodies(2) == ["one for carol", "bob again"]
            assert admin.bodies(3) == ["one for bob", "one for carol", "bob again"]
            srv.service.register("dave")
            (presence,) = bob.take(1, "agent.registered")
    assert json.loads(presence.data)["agent_id"] == "dave"


def test_an_admin_may_watch_as_an_agent(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        register(srv, "alice", "bob", "carol")
        with stream(srv, ADMIN, agent="carol") as carol:
            srv.service.send("alice", "bob", "not for carol")
            srv.service.send("alice", "carol", "for carol")
            assert carol.bodies(1) == ["for carol"]


def test_a_stream_resumes_from_last_event_id_with_everything_missed_once(
    tmp_path: Path,
    database: str | None,
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob")
        send = srv.service.send
        with stream(srv, tokens["bob"]) as bob:
            send("alice", "bob", "m1")
            (first,) = bob.take(1)
        assert first.id
        send("alice", "bob", "m2")
        send("alice", "bob", "m3")
        with stream(srv, tokens["bob"], headers={"Last-Event-ID": first.id}, since=0) as bob:
            send("alice", "bob", "m4")
            send("alice", "bob", "m5")
            assert bob.bodies(4) == ["m2", "m3", "m4", "m5"]


def test_since_replays_the_log_then_goes_live(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        srv.service.send("alice", "bob", "old")
        with stream(srv, agent="bob", since=0) as bob:
            srv.service.send("alice", "bob", "new")
            replayed = bob.take(1, "agent.registered")
            assert bob.bodies(2) == ["old", "new"]
    assert json.loads(replayed[0].data)["agent_id"] == "alice"


def test_without_a_cursor_the_stream_starts_now(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        srv.service.send("alice", "bob", "before")
        # "Now" is what the server has fanned out: a stream opened before its hub has
        # read a commit (written here, outside the server) gets that commit live.
        newest = srv.service.last_event_id()
        deadline = time.monotonic() + HUNG
        while srv.app.state.hub.last_id < newest:
            assert time.monotonic() < deadline, "the hub never read the send"
            time.sleep(0.005)
        with stream(srv, agent="bob") as bob:
            assert bob.ready["last_event_id"] == newest
            srv.service.send("alice", "bob", "after")
            assert bob.bodies(1) == ["after"]


def test_a_send_from_another_process_reaches_the_stream(
    tmp_path: Path, database: str | None
) -> None:
    script = (
        "import sys\n"
        "from relaybus import Relay\n"
        "with Relay.open(dir=sys.argv[1], database=sys.argv[2] or None) as relay:\n"
        "    relay.agent('alice').send('bob', 'from another process')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        with stream(srv, agent="bob") as bob:
            subprocess.run(
                [sys.executable, "-c", script, str(tmp_path / ".relay"), database or ""],
                check=True,
                env=env,
                timeout=HUNG,
            )
            assert bob.bodies(1) == ["from another process"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer rb_not_a_token"}, 401),
        ({"Authorization": "Bearer rb_test_bob"}, 200),
    ],
)
def test_a_stream_needs_a_known_token_in_token_mode(
    tmp_path: Path, database: str | None, headers: dict[str, str], status: int
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        register(srv, "bob")
        with httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client:
            with client.stream("GET", f"{srv.url}/v1/stream", headers=headers) as response:
                assert response.status_code == status
                if status != 200:
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"agent": "alice"}, {}), ({}, {"X-Relaybus-Workspace": "other"})],
)
def test_an_agent_token_cannot_watch_as_another_agent_or_workspace(
    tmp_path: Path, database: str | None, params: dict[str, str], headers: dict[str, str]
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob")
        sent = {"Authorization": f"Bearer {tokens['bob']}", **headers}
        response = httpx.get(
            f"{srv.url}/v1/stream", params=params, headers=sent, timeout=HUNG, verify=UNUSED_TLS
        )
    assert response.status_code == 403
    assert response.json()["status"] == 403


def test_a_malformed_last_event_id_is_refused(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        response = httpx.get(
            f"{srv.url}/v1/stream",
            headers={"Last-Event-ID": "yesterday"},
            timeout=HUNG,
            verify=UNUSED_TLS,
        )
    assert response.status_code == 400


def test_an_idle_stream_gets_heartbeats(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database, sse_heartbeat_seconds=0.05) as srv:
        with httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client:
            with client.stream("GET", f"{srv.url}/v1/stream") as response:
                lines = response.iter_lines()
                for _, line in zip(range(10), lines, strict=False):
                    if line == ": ping":
                        break
                else:
                    raise AssertionError("no heartbeat in the first lines")


def test_server_shutdown_ends_open_streams(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        ended = threading.Event()
        with stream(srv, agent="bob") as bob:
            srv.service.send("alice", "bob", "before shutdown")
            assert bob.bodies(1) == ["before shutdown"]
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            # The server stops the hub before uvicorn drains connections, so the
            # stream ends cleanly (a cut one raises httpx.RemoteProtocolError).
            for _ in bob.events:
                pass
            ended.set()
            stopper.join(HUNG)
        assert ended.is_set() and not stopper.is_alive()
        assert srv.app.state.hub.connections["sse"] == 0


def test_a_client_that_leaves_is_unsubscribed(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        hub = srv.app.state.hub
        with stream(srv) as admin:  # (held: a collected stream closes its connection)
            assert admin.ready["last_event_id"] == 0
            assert hub.connections["sse"] == 1
        # The server notices the closed connection on its own; wait for it by a long-poll.
        srv.service.store.wait_for(lambda: hub.connections["sse"] == 0, HUNG)
        assert hub.connections["sse"] == 0


def test_pushes_and_live_connections_show_in_the_metrics(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        with stream(srv, agent="bob") as bob, stream(srv) as admin:
            srv.service.send("alice", "bob", "counted")
            assert bob.bodies(1) == ["counted"] and admin.bodies(1) == ["counted"]
            text = httpx.get(f"{srv.url}/metrics", timeout=HUNG, verify=UNUSED_TLS).text
    assert 'relaybus_live_connections{transport="sse"} 2.0' in text
    assert "relaybus_messages_delivered_total 2.0" in text
