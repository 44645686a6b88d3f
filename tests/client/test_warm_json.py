"""The JSON calls of the CLI's hot commands (:mod:`relaybus.client.warm_json`) are the
requests the SDK's calls (:mod:`relaybus.client.calls`) make for the same arguments:
method, path, query, body, who acts, epoch, idempotency key and long-poll wait. Their
answers are compared end to end, command by command, in tests/cli/test_warm_cli.py."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from relaybus.client import calls, transport, warm, warm_backend, warm_json
from relaybus.client.transport import Call
from relaybus.errors import InvalidInput

W = "team"

#: (JSON call, SDK call) pairs built from the same arguments, as the CLI passes them.
PAIRS: dict[str, tuple[Callable[[], warm_json.JsonCall], Callable[[], Call[Any]]]] = {
    "get_agent": (
        lambda: warm_json.get_agent("a/b@c", workspace=W),
        lambda: calls.get_agent("a/b@c", workspace=W),
    ),
    "list_agents": (
        lambda: warm_json.list_agents(workspace=W),
        lambda: calls.list_agents(workspace=W),
    ),
    "list_agents filtered": (
        lambda: warm_json.list_agents(
            status="busy",
            tag="web",
            capability="review",
            channel="ops",
            online_only=True,
            workspace=W,
        ),
        lambda: calls.list_agents(
            status="busy",
            tag="web",
            capability="review",
            channel="ops",
            online_only=True,
            workspace=W,
        ),
    ),
    "heartbeat": (
        lambda: warm_json.heartbeat("bob", epoch=3, workspace=W),
        lambda: calls.heartbeat("bob", epoch=3, workspace=W),
    ),
    "heartbeat with status": (
        lambda: warm_json.heartbeat("bob", status="idle", workspace=W),
        lambda: calls.heartbeat("bob", status="idle", workspace=W),
    ),
    "send": (
        lambda: warm_json.send("alice", "bob", "hi", idempotency_key="k1", workspace=W),
        lambda: calls.send("alice", "bob", "hi", idempotency_key="k1", workspace=W),
    ),
    "send with everything": (
        lambda: warm_json.send(
            "alice",
            "cap:review",
            "review PR 7",
            epoch=2,
            subject="PR 7",
            channel="ops",
            reply_to=4,
            priority="high",
            meta={"pr": 7},
            claimable=True,
            idempotency_key="k2",
            workspace=W,
        ),
        lambda: calls.send(
            "alice",
            "cap:review",
            "review PR 7",
            epoch=2,
            subject="PR 7",
            channel="ops",
            reply_to=4,
            priority="high",
            meta={"pr": 7},
            claimable=True,
            idempotency_key="k2",
            workspace=W,
        ),
    ),
    "reply": (
        lambda: warm_json.send("bob", None, "ok", reply_to=1, idempotency_key="k3", workspace=W),
        lambda: calls.send("bob", None, "ok", reply_to=1, idempotency_key="k3", workspace=W),
    ),
    "inbox": (
        lambda: warm_json.inbox("bob", workspace=W),
        lambda: calls.inbox("bob", workspace=W),
    ),
    "inbox --all --peek": (
        lambda: warm_json.inbox(
            "bob", unread_only=False, newest_first=False, since=9, limit=5, epoch=1, workspace=W
        ),
        lambda: calls.inbox(
            "bob", unread_only=False, newest_first=False, since=9, limit=5, epoch=1, workspace=W
        ),
    ),
    "inbox marking read": (
        lambda: warm_json.inbox("bob", mark_read=True, workspace=W),
        lambda: calls.inbox("bob", mark_read=True, workspace=W),
    ),
    "wait": (
        lambda: warm_json.wait("bob", 12.3456, since=0, epoch=2, workspace=W),
        lambda: calls.wait("bob", 12.3456, since=0, epoch=2, workspace=W),
    ),
    "deliveries": (
        lambda: warm_json.deliveries(5, workspace=W),
        lambda: calls.deliveries(5, workspace=W),
    ),
    "wait_deliveries": (
        lambda: warm_json.wait_deliveries(5, "read", 3.0, workspace=W),
        lambda: calls.wait_deliveries(5, "read", 3.0, workspace=W),
    ),
    "claim": (
        lambda: warm_json.claim(3, "carol", workspace=W),
        lambda: calls.claim(3, "carol", workspace=W),
    ),
    "claim with a lease": (
        lambda: warm_json.claim(3, "carol", epoch=4, lease=60.0, workspace=W),
        lambda: calls.claim(3, "carol", epoch=4, lease=60.0, workspace=W),
    ),
    "release": (
        lambda: warm_json.release(3, "carol", epoch=4, workspace=W),
        lambda: calls.release(3, "carol", epoch=4, workspace=W),
    ),
    "list_tasks": (
        lambda: warm_json.list_tasks(workspace=W),
        lambda: calls.list_tasks(workspace=W),
    ),
    "list_tasks as an agent": (
        lambda: warm_json.list_tasks(
            status="open", assignee="bob", limit=7, viewer="bob", workspace=W
        ),
        lambda: calls.list_tasks(status="open", assignee="bob", limit=7, viewer="bob", workspace=W),
    ),
}


def request(call: Call[Any] | warm_json.JsonCall) -> dict[str, Any]:
    """What goes over the wire for ``call`` (a ``None`` query value is left out)."""
    params = {k: v for k, v in (call.params or {}).items() if v is not None}
    return {
        "method": call.method,
        "path": call.path,
        "params": params,
        "body": call.json_body(),
        "workspace": call.workspace,
        "agent": call.agent,
        "epoch": call.epoch,
        "idempotency_key": call.idempotency_key,
        "wait": call.wait,
    }


@pytest.mark.parametrize("name", list(PAIRS))
def test_a_json_call_is_the_request_of_the_sdk_call(name: str) -> None:
    lean, sdk = PAIRS[name]

    assert request(lean()) == request(sdk())


def test_a_send_without_a_key_carries_a_fresh_one_as_the_sdk_does() -> None:
    first, second = (warm_json.send("alice", "bob", "hi", workspace="w") for _ in range(2))

    assert first.idempotency_key and second.idempotency_key
    assert first.idempotency_key != second.idempotency_key
    assert len(first.idempotency_key) == len(
        calls.send("a", "b", "c", workspace="w").idempotency_key or ""
    )


def test_the_warm_backend_sends_as_the_transport_does() -> None:
    # The parts of relaybus.client.transport the warm backend keeps (see warm_backend).
    assert warm_backend.LONGPOLL_CHUNK == transport.LONGPOLL_CHUNK
    assert warm_backend.LONGPOLL_MARGIN == transport.LONGPOLL_MARGIN
    assert warm_backend.READ_TIMEOUT == transport.READ_TIMEOUT
    assert warm_backend.IDEMPOTENCY_HEADER == transport.IDEMPOTENCY_HEADER
    for key in ("k1", 'say "hi"', "back\\slash"):
        assert warm_backend.sf_string(key) == transport.sf_string(key)
    for value in (True, False, 3, "x", ["a", True], ("b", False)):
        assert warm_backend.query_value(value) == transport._query_value(value)
    for body in ({"to": "bob", "body": "héllo ✓", "meta": {"n": [1, 2.5, None]}}, [1, "a"]):
        assert warm_backend.encode_json(body) == transport.encode_json(body)
    for name, (lean, sdk) in PAIRS.items():
        assert warm_backend.attempts(lean()) == transport.retries(sdk()), name


@pytest.mark.parametrize("body", [{"meta": {"x": float("nan")}}, {"tags": {"a"}}])
def test_a_body_json_cannot_hold_is_refused_as_the_transport_refuses_it(body: Any) -> None:
    with pytest.raises(InvalidInput) as lean:
        warm_backend.encode_json(body)
    with pytest.raises(InvalidInput) as sdk:
        transport.encode_json(body)

    assert lean.value.message == sdk.value.message


def test_the_warm_relay_is_stopped_with_sigterm() -> None:
    assert warm.SIGTERM == signal.SIGTERM
