"""Streamable-HTTP MCP at ``/mcp`` on a real relay server, with the ``mcp`` SDK's client."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import httpx

from relaybus import Relay
from relaybus.models import AgentStatus
from tests.mcp.conftest import HUNG, call, fail, http_session, run
from tests.support.live import UNUSED_TLS, live_server

ADMIN = "admin-secret"
#: An MCP initialize request as a client first sends it (handshake era).
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_two_http_sessions_register_from_headers_and_share_work(tmp_path: Path) -> None:
    alice_headers = {
        "X-Relaybus-Agent": "alice",
        "X-Relaybus-Label": "Lead",
        "X-Relaybus-Tags": "backend, api",
        "X-Relaybus-Channels": "ci",
    }
    bob_headers = {"X-Relaybus-Agent": "bob", "X-Relaybus-Caps": "review"}
    with live_server(tmp_path) as srv:

        async def scenario() -> None:
            async with (
                http_session(srv.url, headers=alice_headers) as alice,
                http_session(srv.url, headers=bob_headers) as bob,
            ):
                me = await call(alice, "whoami")
                assert me.startswith(
                    f'You are alice "Lead" (online), workspace default, on '
                    f"the relay server {srv.url}."
                )
                assert "tags: backend, api\ncapabilities: none\nchannels: ci" in me
                seen = await call(bob, "agents")
                assert 'alice (online) - "Lead" - tags: backend, api - channels: ci' in seen
                assert "bob (online) - caps: review [you]" in seen

                sent = await call(alice, "send", to="cap:review", body="PR 7?", claimable=True)
                assert sent == (
                    "Sent #1 to cap:review (bob). Task #1 is open: one recipient can claim it."
                )
                got = await call(bob, "wait_for_message", timeout=HUNG)
                assert "#1 from alice (task #1)\nPR 7?" in got
                assert "held by bob" in await call(bob, "task", action="claim", task_id=1)
                refused = await fail(alice, "task", action="claim", task_id=1)
                assert "only a recipient of its message can" in refused  # she sent it
                await call(bob, "send", reply_to=1, body="approved")
                assert "#2 from bob (thread #1)\napproved" in await call(alice, "inbox")
                assert "[done, by bob]" in await call(
                    bob, "task", action="done", task_id=1, result="merged"
                )

        run(scenario)
        alice = srv.service.get_agent("alice")
        assert alice.label == "Lead" and alice.tags == ["backend", "api"]
        assert alice.status is AgentStatus.OFFLINE  # the sessions were deleted


def test_a_session_without_a_name_gets_one_from_its_client_and_session(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        names: list[str] = []

        async def scenario() -> None:
            async with http_session(srv.url) as client:
                names.append((await call(client, "whoami")).split()[2])
                assert [a.id for a in srv.service.list_agents()] == names

        run(scenario)
        [agent] = srv.service.list_agents()
    assert agent.id == names[0] and agent.id.startswith("mcp-") and len(agent.id) == 12
    assert agent.id[4:] == agent.meta["mcp_session"][:8]
    assert agent.status is AgentStatus.OFFLINE


def test_an_idle_session_ends_and_its_agent_goes_offline(tmp_path: Path) -> None:
    with live_server(tmp_path, mcp_idle_seconds=0.5) as srv:
        relay = Relay.embedded(srv.service)
        cursor = relay.last_event_id()

        async def scenario() -> None:
            # A client that vanishes without DELETE: only the idle timeout ends it.
            async with http_session(
                srv.url, headers={"X-Relaybus-Agent": "ghost"}, terminate_on_close=False
            ) as client:
                await call(client, "whoami")

        run(scenario)
        gone = relay.wait_events(HUNG, since=cursor, kinds=["agent.offline"])
        assert [e.agent_id for e in gone] == ["ghost"]


def test_an_agent_token_acts_as_its_agent_without_registering_again(tmp_path: Path) -> None:
    with live_server(tmp_path, admin_token=ADMIN) as srv:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        made = httpx.post(
            f"{srv.url}/v1/agents", json={"id": "carol"}, headers=admin, verify=UNUSED_TLS
        )
        token = made.json()["token"]
        epoch = srv.service.get_agent("carol").epoch

        async def scenario() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with http_session(srv.url, headers=headers) as carol:
                assert (await call(carol, "whoami")).startswith("You are carol (online)")

        run(scenario)
        assert srv.service.get_agent("carol").epoch == epoch
        still = httpx.get(
            f"{srv.url}/v1/agents/carol",
            headers={"Authorization": f"Bearer {token}"},
            verify=UNUSED_TLS,
        )
        assert still.status_code == 200  # the token was not rotated


def test_mcp_refuses_callers_as_the_rest_api_does(tmp_path: Path) -> None:
    with live_server(tmp_path, admin_token=ADMIN) as srv, httpx.Client(verify=UNUSED_TLS) as http:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        tokens = {
            name: http.post(f"{srv.url}/v1/agents", json={"id": name}, headers=admin).json()[
                "token"
            ]
            for name in ("carol", "dave")
        }

        def post(headers: dict[str, str]) -> httpx.Response:
            return http.post(f"{srv.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})

        missing = post({})
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "needs a token" in missing.json()["detail"]
        assert post({"Authorization": "Bearer wrong"}).status_code == 401
        as_other = post({"Authorization": f"Bearer {tokens['carol']}", "X-Relaybus-Agent": "dave"})
        assert as_other.status_code == 403
        assert "acts as 'carol' only" in as_other.json()["detail"]

        opened = post({"Authorization": f"Bearer {tokens['carol']}"})
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        hijack = http.post(
            f"{srv.url}/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                **MCP_HEADERS,
                "Authorization": f"Bearer {tokens['dave']}",
                "Mcp-Session-Id": session,
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
        assert hijack.status_code == 404  # as if there were no such session
        closed = http.delete(
            f"{srv.url}/mcp",
            headers={"Authorization": f"Bearer {tokens['carol']}", "Mcp-Session-Id": session},
        )
        assert closed.status_code == 200


def test_sessionless_clients_name_their_agent(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:

        async def scenario() -> None:
            named = {"X-Relaybus-Agent": "erin", "X-Relaybus-Tags": "qa"}
            async with (
                http_session(srv.url, mode="auto", headers=named) as erin,
                http_session(srv.url, mode="auto") as anonymous,
            ):
                assert erin.protocol_version == "2026-07-28"  # no MCP session at all
                assert "You are erin (online)" in await call(erin, "whoami")
                assert "tags: qa" in await call(erin, "whoami")
                refused = await fail(anonymous, "whoami")
                assert "must name its agent: send X-Relaybus-Agent" in refused

        run(scenario)
        assert json.loads(srv.service.get_agent("erin").model_dump_json())["tags"] == ["qa"]


class Records(logging.Handler):
    """Collects the log records of a logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_server_shutdown_ends_open_mcp_streams_and_takes_agents_offline(tmp_path: Path) -> None:
    records = Records()
    with live_server(tmp_path) as srv:
        logging.getLogger("uvicorn.error").addHandler(records)
        try:

            async def scenario() -> None:
                async with http_session(srv.url, headers={"X-Relaybus-Agent": "alice"}) as alice:
                    await call(alice, "whoami")  # the session's event stream is open now
                    await anyio.to_thread.run_sync(srv.stop)
                    assert srv.service.get_agent("alice").status is AgentStatus.OFFLINE

            run(scenario)
        finally:
            logging.getLogger("uvicorn.error").removeHandler(records)
    assert records.messages == []  # no "graceful shutdown exceeded", no cut responses
