"""The CLI's hot commands through the warm relay (:mod:`relaybus.client.warm_json`)
send the requests the SDK sends: the same :mod:`relaybus.client.operations` requests
(method, path, query, body, who acts, epoch, idempotency key, long-poll wait), with the
same bytes and headers as the SDK's HTTP session. Their answers are compared end to
end, command by command, in tests/cli/test_warm_cli.py."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from relaybus import __version__
from relaybus.client import calls, warm
from relaybus.client.request import Request
from relaybus.client.transport import Call, HTTPSession
from relaybus.client.warm_backend import WarmBackend
from relaybus.client.warm_json import JsonAgent, JsonRelay
from relaybus.settings import Settings
from tests.client.test_operations import fields
from tests.server.test_contract import build, builders

W = "team"


class Recorder(WarmBackend):
    """A warm backend that records the requests it is given and answers ``[]``
    (nothing is sent: the requests are what is compared)."""

    def __init__(self) -> None:
        super().__init__(Settings(workspace=W), Path("/nowhere"), Path("/nowhere/relay.sock"))
        self.sent: list[Request] = []

    def request(self, call: Request) -> bytes:
        self.sent.append(call)
        return b"[]"


def agent(recorder: Recorder) -> JsonAgent:
    return JsonAgent(JsonRelay(recorder), "a/b@c", 3)


#: A hot command's method (on a JsonAgent acting as "a/b@c", epoch 3, or on its relay)
#: → the SDK call the AgentHandle or Relay method of the same arguments builds.
CASES: dict[str, tuple[Callable[[JsonAgent], object], Callable[[], Call[Any]]]] = {
    "agents": (
        lambda me: me.relay.agents(tag="web", online_only=True),
        lambda: calls.list_agents(tag="web", online_only=True, workspace=W),
    ),
    "send": (
        lambda me: me.send("bob", "hi", subject="s", meta={"pr": 7}, idempotency_key="k"),
        lambda: calls.send(
            "a/b@c",
            "bob",
            "hi",
            subject="s",
            meta={"pr": 7},
            idempotency_key="k",
            epoch=3,
            workspace=W,
        ),
    ),
    "reply": (
        lambda me: me.reply(4, "ok", priority="high", idempotency_key="k"),
        lambda: calls.send(
            "a/b@c",
            None,
            "ok",
            reply_to=4,
            priority="high",
            idempotency_key="k",
            epoch=3,
            workspace=W,
        ),
    ),
    "inbox": (
        lambda me: me.inbox(unread_only=False, since=9, limit=5, mark_read=True),
        lambda: calls.inbox(
            "a/b@c", unread_only=False, since=9, limit=5, mark_read=True, epoch=3, workspace=W
        ),
    ),
    "wait": (
        lambda me: me.wait(0.0, since=2),  # 0: no time passes before the request
        lambda: calls.wait("a/b@c", 0.0, since=2, epoch=3, workspace=W),
    ),
    "tasks": (
        lambda me: me.tasks(status="open", limit=7),
        lambda: calls.list_tasks(status="open", limit=7, viewer="a/b@c", workspace=W),
    ),
    "claim": (
        lambda me: me.claim(3, lease=60.0),
        lambda: calls.claim(3, "a/b@c", lease=60.0, epoch=3, workspace=W),
    ),
    "release": (
        lambda me: me.release(3),
        lambda: calls.release(3, "a/b@c", epoch=3, workspace=W),
    ),
    "heartbeat": (
        lambda me: me.heartbeat("idle"),
        lambda: calls.heartbeat("a/b@c", status="idle", epoch=3, workspace=W),
    ),
    "deliveries": (
        lambda me: me.relay.deliveries(5),
        lambda: calls.deliveries(5, workspace=W),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hot_command_sends_the_request_of_the_sdk_call(name: str) -> None:
    recorder = Recorder()
    command, sdk = CASES[name]
    command(agent(recorder))

    assert [fields(r) for r in recorder.sent] == [fields(sdk().request)]


def test_a_send_without_a_key_carries_a_fresh_one() -> None:
    recorder = Recorder()
    for _ in range(2):
        agent(recorder).send("bob", "hi")
    first, second = (r.idempotency_key for r in recorder.sent)

    assert first and second and first != second


@pytest.mark.parametrize("every", [False, True], ids=["required", "every-argument"])
def test_the_warm_backend_sends_the_bytes_the_http_session_sends(every: bool) -> None:
    session = HTTPSession(Settings(url="http://127.0.0.1:9"))
    backend = Recorder()
    for name, builder in builders().items():
        call = build(name, builder, every=every)
        method, target, content, headers = backend._request(call.request)
        over_httpx = session.request(call)
        query = over_httpx["params"]

        assert method == over_httpx["method"], name
        assert target == over_httpx["url"] + (f"?{urlencode(query, doseq=True)}" if query else "")
        assert content == over_httpx["content"], name
        assert headers == {"User-Agent": f"relaybus/{__version__}", **over_httpx["headers"]}
        assert call.request.attempts() in (1, 3)


def test_the_warm_relay_is_stopped_with_sigterm() -> None:
    assert warm.SIGTERM == signal.SIGTERM
