"""``/v1/ws`` on a real server: pushed events, send / ack / heartbeat requests, error
frames, pipelined sends, resume, auth refusals and shutdown."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from relaybus.service import hash_token
from tests.support.live import LiveServer, live_server

#: Seconds before a read counts as hung: far above any real push.
HUNG = 30.0
ADMIN = "admin-secret"


class Socket:
    """An open relay WebSocket past its ready frame; events that arrive while a
    request waits for its reply are kept for :meth:`event`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._events: deque[dict[str, Any]] = deque()
        self._refs = itertools.count(1)
        self.ready = self.recv()
        assert self.ready["type"] == "ready"

    def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.ws.recv(timeout=HUNG))
        return frame

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def reply(self) -> dict[str, Any]:
        """The next result or error frame (events are kept aside)."""
        while True:
            frame = self.recv()
            if frame["type"] == "event":
                self._events.append(frame["event"])
            else:
                return frame

    def request(self, **frame: Any) -> dict[str, Any]:
        """Send a request with a fresh ref and return its reply."""
        ref = next(self._refs)
        self.send({**frame, "ref": ref})
        reply = self.reply()
        assert reply["ref"] == ref
        return reply

    def event(self, kind: str = "message.sent") -> dict[str, Any]:
        """The next event of ``kind`` (others are skipped)."""
        while True:
            event = self._events.popleft() if self._events else self._next_event()
            if event["kind"] == kind:
                return event

    def bodies(self, count: int) -> list[str]:
        return [self.event()["data"]["message"]["body"] for _ in range(count)]

    def _next_event(self) -> dict[str, Any]:
        frame = self.recv()
        assert frame["type"] == "event", frame
        event: dict[str, Any] = frame["event"]
        return event


@contextlib.contextmanager
def socket(srv: LiveServer, bearer: str | None = None, **params: Any) -> Iterator[Socket]:
    """Connect to ``/v1/ws`` (``bearer`` in the Authorization header, ``params`` in the
    query) and read the ready frame."""
    url = f"{srv.ws_url}/v1/ws"
    if params:
        url += "?" + urlencode(params)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    with connect(url, additional_headers=headers, open_timeout=HUNG, close_timeout=HUNG) as ws:
        yield Socket(ws)


def register(srv: LiveServer, *names: str) -> dict[str, str]:
    """Register agents with tokens; ``{name: token}``."""
    tokens = {}
    for name in names:
        tokens[name] = f"rb_test_{name}"
        srv.service.register(name, token_hash=hash_token(tokens[name]))
    return tokens


def test_a_message_is_pushed_to_the_recipients_socket(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob")
        with socket(srv, tokens["bob"]) as bob:
            assert bob.ready["last_event_id"] == srv.service.last_event_id()
            sent = srv.service.send("alice", "bob", "hello over ws")
            event = bob.event()
    assert event["data"]["message"]["id"] == sent.id
    assert event["data"]["message"]["body"] == "hello over ws"


def test_a_send_over_the_socket_acts_as_its_agent_and_reaches_the_recipient(
    tmp_path: Path,
    database: str | None,
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob", "carol")
        with socket(srv, tokens["alice"]) as alice, socket(srv, tokens["bob"]) as bob:
            reply = alice.request(type="send", to="bob", body="hi bob", priority="high")
            assert reply["type"] == "result"
            assert reply["data"]["sender"] == "alice"
            assert reply["data"]["priority"] == "high"
            assert bob.bodies(1) == ["hi bob"]
            # A request cannot name another sender: that field does not exist.
            refused = alice.request(type="send", sender="carol", to="bob", body="as carol?")
        inbox = srv.service.inbox("bob", workspace="default")  # (before the store closes)
    assert refused["type"] == "error" and refused["status"] == 422
    assert [m.sender for m in inbox] == ["alice"]


def test_ack_and_heartbeat_over_the_socket(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        first = srv.service.send("alice", "bob", "one")
        second = srv.service.send("alice", "bob", "two")
        with socket(srv, agent="bob") as bob:
            by_ids = bob.request(type="ack", ids=[first.id])
            up_to = bob.request(type="ack", up_to=second.id)
            again = bob.request(type="ack", up_to=second.id)
            beat = bob.request(type="heartbeat", status="busy")
            read = bob.event("message.read")
        unread = srv.service.unread_count("bob")
    assert by_ids == {"type": "result", "ref": 1, "data": {"marked": 1}}
    assert up_to["data"] == {"marked": 1} and again["data"] == {"marked": 0}
    assert beat["data"]["id"] == "bob" and beat["data"]["status"] == "busy"
    assert read["agent_id"] == "bob" and read["data"]["message_ids"] == [first.id]
    assert unread == 0


def test_bad_requests_get_error_frames_and_the_socket_stays_open(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice")
        with socket(srv, agent="alice") as alice:
            alice.send("{not json")
            malformed = alice.reply()
            unknown = alice.request(type="dance")
            nobody = alice.request(type="send", to="nobody", body="hello?")
            both = alice.request(type="ack", ids=[1], up_to=1)
            still_open = alice.request(type="heartbeat")
    assert malformed["type"] == "error" and malformed["status"] == 400
    assert malformed["ref"] is None
    assert unknown["type"] == "error" and unknown["status"] == 422
    assert nobody["type"] == "error" and nobody["status"] == 404
    assert nobody["title"] == "not found" and "nobody" in nobody["detail"]
    assert both["status"] == 400
    assert still_open["type"] == "result"


def test_an_admin_socket_without_an_agent_only_watches(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        register(srv, "alice", "bob")
        with socket(srv, ADMIN) as admin, socket(srv, ADMIN, agent="alice") as as_alice:
            refused = admin.request(type="send", to="bob", body="from whom?")
            sent = as_alice.request(type="send", to="bob", body="from alice")
            assert admin.bodies(1) == ["from alice"]
    assert refused["type"] == "error" and refused["status"] == 403
    assert sent["data"]["sender"] == "alice"


def test_pipelined_sends_each_get_their_own_reply_in_order(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        with socket(srv, agent="alice") as alice, socket(srv, agent="bob") as bob:
            for n in range(60):
                to = "nobody" if n == 30 else "bob"
                alice.send({"type": "send", "to": to, "body": f"m{n}", "ref": n})
            replies = [alice.reply() for _ in range(60)]
            delivered = bob.bodies(59)
            echoed = alice.bodies(59)  # the sender sees its sends (and the socket drains)
    assert [r["ref"] for r in replies] == list(range(60))
    assert [r["type"] for r in replies].count("error") == 1
    assert replies[30]["type"] == "error" and replies[30]["status"] == 404
    expected = [f"m{n}" for n in range(60) if n != 30]
    assert [r["data"]["body"] for r in replies if r["type"] == "result"] == expected
    assert delivered == expected and echoed == expected


def test_since_resumes_the_socket_with_what_was_missed(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database) as srv:
        register(srv, "alice", "bob")
        with socket(srv, agent="bob") as bob:
            srv.service.send("alice", "bob", "m1")
            cursor = bob.event()["id"]
        srv.service.send("alice", "bob", "m2")
        with socket(srv, agent="bob", since=cursor) as bob:
            srv.service.send("alice", "bob", "m3")
            assert bob.bodies(2) == ["m2", "m3"]


def test_the_token_may_come_in_the_query(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        tokens = register(srv, "alice", "bob")
        with socket(srv, token=tokens["bob"]) as bob:
            pass
        with socket(srv, None, token=tokens["alice"]) as alice:
            reply = alice.request(type="send", to="bob", body="query token")
    assert bob.ready["type"] == "ready"
    assert reply["data"]["sender"] == "alice"


@pytest.mark.parametrize(
    ("token", "params", "status"),
    [
        (None, {}, 401),
        ("rb_not_a_token", {}, 401),
        (None, {"token": "rb_not_a_token"}, 401),
        ("rb_test_bob", {"agent": "alice"}, 403),
        ("rb_test_bob", {"workspace": "other"}, 403),
        (ADMIN, {"since": "soon"}, 400),
        (ADMIN, {"since": str(2**63)}, 400),
    ],
)
def test_the_handshake_is_refused_with_the_problem_status(
    tmp_path: Path, database: str | None, token: str | None, params: dict[str, str], status: int
) -> None:
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        register(srv, "alice", "bob")
        with pytest.raises(InvalidStatus) as refused, socket(srv, token, **params):
            pass
    assert refused.value.response.status_code == status
    problem = json.loads(refused.value.response.body or b"{}")
    assert problem["status"] == status


def test_server_shutdown_closes_open_sockets(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        with socket(srv, agent="bob") as bob:
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            with pytest.raises(ConnectionClosed):
                while True:
                    bob.recv()
            stopper.join(HUNG)
        assert not stopper.is_alive()
        assert srv.app.state.hub.connections["ws"] == 0
