"""Delivery receipts over HTTP and WebSocket: ``/inbox/delivered``, ``?via=``,
``GET /v1/messages/{id}/deliveries`` (and its ``?until=&wait=`` long-poll),
``message.delivered`` on the stream, and the stuck-delivery gauge."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybus.settings import Settings
from tests.server.conftest import HUNG, as_agent, problem, unchanged
from tests.server.routes.test_ws import register as register_ws
from tests.server.routes.test_ws import socket
from tests.server.test_metrics import scrape
from tests.support.live import UNUSED_TLS, LiveServer, live_server


@pytest.fixture
def tokens(cast: Callable[..., str]) -> dict[str, str]:
    return {name: cast(name) for name in ("alice", "bob", "carol")}


def send(http: httpx.Client, to: str = "broadcast", sender: str = "alice") -> int:
    reply = http.post("/v1/messages", json={"sender": sender, "to": to, "body": "ship it"})
    assert reply.status_code == 201, reply.text
    message_id: int = reply.json()["id"]
    return message_id


def receipts(http: httpx.Client, message_id: int, **params: Any) -> dict[str, dict[str, Any]]:
    reply = http.get(f"/v1/messages/{message_id}/deliveries", params=params)
    assert reply.status_code == 200, reply.text
    return {d["agent_id"]: d for d in reply.json()}


def test_receipts_move_from_queued_to_delivered_to_read(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = send(http)
    assert {a: d["state"] for a, d in receipts(http, sent).items()} == {
        "bob": "queued",
        "carol": "queued",
    }
    with as_agent(http, tokens["bob"]) as bob:
        reply = bob.post("/v1/agents/bob/inbox/delivered", json={"ids": [sent], "via": "pty"})
        assert reply.json() == {"marked": 1}
        again = bob.post("/v1/agents/bob/inbox/delivered", json={"ids": [sent], "via": "tmux"})
        assert again.json() == {"marked": 0}
    http.get("/v1/agents/carol/inbox", params={"via": "mcp"})
    found = receipts(http, sent)
    assert (found["bob"]["state"], found["bob"]["via"]) == ("delivered", "pty")
    assert (found["carol"]["state"], found["carol"]["via"]) == ("delivered", "mcp")
    assert found["bob"]["delivered_at"] is not None and found["bob"]["read_at"] is None
    http.post("/v1/agents/bob/inbox/read", json={"ids": [sent]})
    bob_receipt = receipts(http, sent)["bob"]
    assert (bob_receipt["state"], bob_receipt["via"]) == ("read", "pty")


def test_a_read_over_http_delivers_by_the_path_it_names(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = send(http, to="bob")
    http.post("/v1/agents/bob/inbox/read", json={"ids": [sent], "via": "hook"})
    assert receipts(http, sent)["bob"]["via"] == "hook"


def test_waiting_for_read_returns_when_the_last_recipient_reads(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = send(http)
    http.post("/v1/agents/bob/inbox/read", json={"ids": [sent]})
    answer: list[dict[str, dict[str, Any]]] = []
    waiter = threading.Thread(
        target=lambda: answer.append(receipts(http, sent, until="read", wait=HUNG))
    )
    waiter.start()
    with httpx.Client(base_url=http.base_url, timeout=HUNG, verify=UNUSED_TLS) as other:
        other.post("/v1/agents/carol/inbox/read", json={"ids": [sent]})
    waiter.join(HUNG)
    assert not waiter.is_alive()
    assert {a: d["state"] for a, d in answer[0].items()} == {"bob": "read", "carol": "read"}


def test_a_wait_that_times_out_returns_the_receipts_as_they_are(
    http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = send(http, to="bob")
    found = receipts(http, sent, until="delivered", wait=0.05)
    assert found["bob"]["state"] == "queued"


def test_bad_receipts_are_refused_and_change_nothing(
    server: LiveServer, http: httpx.Client, tokens: dict[str, str]
) -> None:
    sent = send(http, to="bob")
    with unchanged(server):
        bad_via = http.post("/v1/agents/bob/inbox/delivered", json={"ids": [sent], "via": "fax"})
        assert "via" in problem(bad_via, 422)["detail"]
        empty = http.post("/v1/agents/bob/inbox/delivered", json={"ids": [], "via": "pty"})
        assert "ids" in problem(empty, 422)["detail"]
        problem(http.get("/v1/agents/bob/inbox", params={"via": "fax"}), 422)
        until = http.get(f"/v1/messages/{sent}/deliveries", params={"until": "seen"})
        assert "until" in problem(until, 422)["detail"]
        problem(http.get("/v1/messages/999/deliveries"), 404)
        with as_agent(http, tokens["carol"]) as carol:
            refused = carol.post(
                "/v1/agents/bob/inbox/delivered", json={"ids": [sent], "via": "pty"}
            )
            problem(refused, 403)
            hidden = problem(carol.get(f"/v1/messages/{sent}/deliveries"), 404)
            assert hidden["detail"] == f"no message {sent}"


def test_a_websocket_receipt_records_delivery_by_stream(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(tmp_path, database=database, admin_token="admin-secret") as srv:
        tokens = register_ws(srv, "alice", "bob")
        with socket(srv, tokens["bob"]) as bob:
            sent = srv.service.send("alice", "bob", "pushed")
            pushed = bob.event()["data"]["message"]["id"]
            assert bob.request(type="delivered", ids=[pushed]) == {
                "type": "result",
                "ref": 1,
                "data": {"marked": 1},
            }
            delivered = bob.event("message.delivered")
        (receipt,) = srv.service.deliveries(sent.id)
    assert (receipt.state.value, receipt.via) == ("delivered", "stream")
    assert delivered["data"] == {"message_ids": [sent.id], "via": "stream"}


def test_stuck_deliveries_show_in_metrics_and_agent_listings(
    tmp_path: Path, database: str | None
) -> None:
    # A threshold of a millisecond: every queued delivery of an online agent is stuck.
    with (
        live_server(tmp_path, database=database, settings=Settings(stuck_after=0.001)) as srv,
        httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http,
    ):
        for name in ("alice", "bob", "carol"):
            http.post("/v1/agents", json={"id": name})
        sent = send(http)
        http.post("/v1/agents/carol/inbox/delivered", json={"ids": [sent], "via": "pty"})
        samples = scrape(http)
        listed = {a["id"]: a["stuck"] for a in http.get("/v1/agents").json()}
    assert samples[("relaybus_stuck_deliveries", frozenset({("workspace", "default")}))] == 1
    assert listed == {"alice": 0, "bob": 1, "carol": 0}
