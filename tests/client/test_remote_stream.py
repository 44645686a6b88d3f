"""Live delivery through the sync SDK over a server: long-polls, the SSE stream, and
resuming it after the server restarts."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from relaybus import InvalidInput, Message, Relay, StoreError
from relaybus.client.backends import RemoteBackend
from relaybus.client.streams import Backoff
from relaybus.settings import Settings
from tests.support.live import UNUSED_TLS, LiveServer, free_port, live_server

if TYPE_CHECKING:
    from tests.conftest import Background

HUNG = 30.0


@pytest.fixture
def srv(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    with live_server(tmp_path, database=database) as server:
        yield server


class Watched:
    """A remote relay that notes each long-poll it sends (path, ``wait`` parameter)."""

    def __init__(self, url: str) -> None:
        self.polls: list[tuple[str, float]] = []
        self.polling = threading.Event()
        client = httpx.Client(base_url=url, event_hooks={"request": [self._saw]}, verify=UNUSED_TLS)
        self.relay = Relay(RemoteBackend(Settings(url=url), client=client))

    def _saw(self, request: httpx.Request) -> None:
        wait = request.url.params.get("wait")
        if wait is not None:
            self.polls.append((request.url.path, float(wait)))
            self.polling.set()


def test_wait_over_http_returns_mail_sent_while_it_waits(
    srv: LiveServer, background: type[Background[Any]]
) -> None:
    watched = Watched(srv.url)
    with watched.relay as relay:
        alice = relay.register("alice")
        bob = relay.register("bob")
        waiter = background(lambda: bob.wait(timeout=HUNG, mark_read=True))
        assert watched.polling.wait(HUNG)
        sent = alice.send("bob", "wake up")
        assert [m.id for m in waiter.outcome()] == [sent.id]
        assert bob.cursor == sent.id
        assert bob.unread_count() == 0
    assert watched.polls[0][0] == "/v1/agents/bob/inbox"


def test_wait_events_over_http_returns_the_next_event(
    srv: LiveServer, background: type[Background[Any]]
) -> None:
    watched = Watched(srv.url)
    with watched.relay as relay:
        alice = relay.register("alice")
        cursor = relay.events()[-1].id
        waiter = background(lambda: relay.wait_events(HUNG, since=cursor))
        assert watched.polling.wait(HUNG)
        alice.heartbeat("busy")
        assert [e.kind for e in waiter.outcome()] == ["agent.updated"]


def test_a_long_wait_is_split_into_polls_the_server_allows(
    srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RemoteBackend, "wait_step", 0.2)
    watched = Watched(srv.url)
    with watched.relay as relay:
        bob = relay.register("bob")
        assert bob.wait(timeout=0.5) == []
        assert relay.wait_events(0.5, since=relay.events()[-1].id) == []
    inbox_polls = [wait for path, wait in watched.polls if path.endswith("/inbox")]
    event_polls = [wait for path, wait in watched.polls if path == "/v1/events"]
    for polls in (inbox_polls, event_polls):
        assert len(polls) >= 2
        assert max(polls) <= 0.2


def test_the_stream_replays_the_log_from_a_cursor_each_event_once(srv: LiveServer) -> None:
    with Relay.open(url=srv.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        alice.send("bob", "one")
        alice.send("bob", "two")
        logged = relay.events(since=0)
        stream = relay.stream(since=0)
        got = [next(stream) for _ in logged]
        stream.close()
    # The server adds the whole message to message.sent, so receivers need no lookup.
    carried = [e.data.pop("message", None) for e in got]
    assert got == logged
    assert [m["body"] for m in carried if m is not None] == ["one", "two"]


def test_the_stream_keeps_only_the_kinds_asked_for(srv: LiveServer) -> None:
    with Relay.open(url=srv.url) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        first = alice.send("bob", "one")
        alice.heartbeat("busy")
        second = alice.send("bob", "two")
        stream = relay.stream(since=0, kinds=["message."])
        got = [next(stream).data["message_id"] for _ in range(2)]
        stream.close()
    assert got == [first.id, second.id]


def test_an_agents_messages_are_only_its_deliveries(srv: LiveServer) -> None:
    with Relay.open(url=srv.url) as relay:
        alice = relay.register("alice")
        bob = relay.register("bob")
        relay.register("carol")
        alice.send("carol", "not for bob")
        for_bob = alice.send("bob", "for bob")
        bob.send("alice", "from bob")
        to_all = alice.send("broadcast", "everyone")
        incoming = bob.messages(since=0)
        got = [next(incoming) for _ in range(2)]
        incoming.close()
        assert [m.id for m in got] == [for_bob.id, to_all.id]
        assert got[0] == relay.message(for_bob.id)


def test_messages_can_start_with_the_unread_inbox(srv: LiveServer) -> None:
    with Relay.open(url=srv.url) as relay:
        alice = relay.register("alice")
        bob = relay.register("bob")
        early = alice.send("bob", "before anyone listened")
        incoming = bob.messages(unread=True)
        assert next(incoming).id == early.id
        late = alice.send("bob", "after")
        assert next(incoming).id == late.id
        incoming.close()


def test_messages_resume_after_a_server_restart_with_nothing_lost_or_repeated(
    srv: LiveServer, background: type[Background[Any]]
) -> None:
    got: queue.Queue[Message] = queue.Queue()
    with Relay.open(url=srv.url) as relay:
        alice = relay.register("alice")
        bob = relay.register("bob")
        since = relay.last_event_id()

        def listen() -> int:
            for count, message in enumerate(bob.messages(since=since, max_backoff=0.3), 1):
                got.put(message)
                if count == 4:
                    break
            return count

        listener = background(listen)
        first = alice.send("bob", "before the restart")
        assert got.get(timeout=HUNG).id == first.id
        srv.stop()
        # Written while no server runs, straight into the database.
        during = srv.service.send("alice", "bob", "while the server was down")
        srv.start()
        after = alice.send("bob", "after the restart")
        assert got.get(timeout=HUNG).id == during.id
        assert got.get(timeout=HUNG).id == after.id
        last = alice.send("bob", "one more")
        assert got.get(timeout=HUNG).id == last.id
        assert listener.outcome() == 4


def test_the_embedded_relay_streams_from_its_event_log(
    tmp_path: Path, database: str | None
) -> None:
    with Relay.open(dir=tmp_path, database=database) as relay:
        alice = relay.register("alice")
        bob = relay.register("bob")
        relay.register("carol")
        alice.send("carol", "not for bob")
        sent = alice.send("bob", "hi")
        stream = relay.stream(since=0)
        assert [next(stream).kind for _ in range(5)] == [
            "agent.registered",
            "agent.registered",
            "agent.registered",
            "message.sent",
            "message.sent",
        ]
        stream.close()
        incoming = bob.messages(since=0)
        assert next(incoming) == relay.message(sent.id)
        incoming.close()


def test_watching_as_an_agent_needs_a_server(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path) as relay:
        with pytest.raises(InvalidInput, match="needs a relay server"):
            relay.stream(agent="alice")


def test_a_stream_from_something_that_is_not_a_relay_is_refused(tmp_path: Path) -> None:
    def not_a_relay(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>hello</html>")

    client = httpx.Client(base_url="http://relay.test", transport=httpx.MockTransport(not_a_relay))
    backend = RemoteBackend(Settings(url="http://relay.test"), client=client)
    with Relay(backend) as relay:
        with pytest.raises(InvalidInput, match="not a relay server"):
            next(relay.stream())


def test_reconnect_delays_double_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.1


def test_a_stream_gives_up_on_an_unreachable_server_when_asked() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Relay.open(url=url) as relay:
        events = relay.stream(max_backoff=0.1, give_up_after=0)
        with pytest.raises(StoreError, match=f"cannot reach relay server at {url}"):
            next(events)


def test_a_stream_whose_agent_token_was_revoked_goes_on_without_it(srv: LiveServer) -> None:
    # Open mode: another client registering bob again revokes this client's token
    # for bob; the stream then continues as an admin would watch bob.
    with Relay.open(url=srv.url) as relay, Relay.open(url=srv.url) as elsewhere:
        alice = relay.register("alice")
        bob = relay.register("bob")
        elsewhere.register("bob", instance_id="another")
        sent = alice.send("bob", "still delivered")
        incoming = bob.messages(since=0)
        assert next(incoming).id == sent.id
        incoming.close()
        assert bob.token is None
