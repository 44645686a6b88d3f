"""The ``relaybus://inbox`` resource: reading it, and being told of new mail.

Handshake-era clients subscribe with ``resources/subscribe`` and get
``notifications/resources/updated``; 2026-07-28 clients open a
``subscriptions/listen`` stream. Either way another agent's send is what
triggers the notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
import pytest
from mcp import Client, MCPDeprecationWarning
from mcp.client.session import IncomingMessage
from mcp.server.subscriptions import ResourceUpdated
from mcp_types import ResourceUpdatedNotification, TextResourceContents

from relaybus.mcp import INBOX_URI, AgentSession
from relaybus.mcp.resources import CURRENT_AGENT, AgentBus
from tests.mcp.conftest import HUNG, call, http_session, run, stdio_session
from tests.support.live import live_server


class Updates:
    """A message handler that records inbox-updated notifications."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(message.params.uri)
            self.arrived.set()


async def subscribe(client: Client) -> None:
    with pytest.warns(MCPDeprecationWarning):  # the handshake-era API, on purpose
        await client.subscribe_resource(INBOX_URI)


async def read_inbox(client: Client) -> str:
    result = await client.read_resource(INBOX_URI)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


@pytest.mark.in_process_too
@pytest.mark.usefixtures("daemon")
def test_a_subscribed_stdio_session_hears_of_new_mail(tmp_path: Path) -> None:
    updates = Updates()

    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice", message_handler=updates) as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob") as bob,
        ):
            assert alice.server_capabilities.resources is not None
            assert alice.server_capabilities.resources.subscribe is True
            await subscribe(alice)
            await call(bob, "send", to="alice", body="news")
            with anyio.fail_after(HUNG):
                await updates.arrived.wait()
            assert updates.uris[0] == INBOX_URI
            # Reading the resource shows the mail without marking it read.
            assert "#1 from bob\nnews" in await read_inbox(alice)
            assert "#1 from bob\nnews" in await call(alice, "inbox")
            assert await read_inbox(alice) == "No new messages."

    run(scenario)


@pytest.mark.usefixtures("daemon")
def test_a_listening_2026_session_hears_of_new_mail(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            stdio_session(tmp_path, "a", mode="auto", RELAYBUS_AGENT="alice") as alice,
            stdio_session(tmp_path, "b", RELAYBUS_AGENT="bob") as bob,
        ):
            assert alice.protocol_version == "2026-07-28"
            async with alice.listen(resource_subscriptions=[INBOX_URI]) as stream:
                await call(bob, "send", to="alice", body="news")
                with anyio.fail_after(HUNG):
                    event = await anext(stream)
            assert event == ResourceUpdated(uri=INBOX_URI)
            assert "news" in await read_inbox(alice)

    run(scenario)


def test_a_subscribed_http_session_hears_of_its_own_mail(tmp_path: Path) -> None:
    updates = Updates()
    with live_server(tmp_path) as srv:

        async def scenario() -> None:
            async with (
                http_session(
                    srv.url, headers={"X-Relaybus-Agent": "alice"}, message_handler=updates
                ) as alice,
                http_session(srv.url, headers={"X-Relaybus-Agent": "bob"}) as bob,
            ):
                await subscribe(alice)
                await call(bob, "send", to="alice", body="news")
                with anyio.fail_after(HUNG):
                    await updates.arrived.wait()
                assert "news" in await read_inbox(alice)
                assert await read_inbox(bob) == "No new messages."

        run(scenario)


def test_the_bus_sends_an_agents_inbox_updates_to_its_streams_only() -> None:
    bus = AgentBus()
    heard: dict[str, list[object]] = {"alice": [], "bob": []}
    agents = {name: _Listening() for name in heard}
    for name, agent in agents.items():
        token = CURRENT_AGENT.set(cast(AgentSession, agent))
        try:
            bus.subscribe(heard[name].append)
        finally:
            CURRENT_AGENT.reset(token)
    event = ResourceUpdated(uri=INBOX_URI)

    bus.publish_to(cast(AgentSession, agents["alice"]), event)

    assert heard == {"alice": [event], "bob": []}
    assert agents["alice"].streams == agents["bob"].streams == 1


class _Listening:
    """Stands in for an AgentSession: counts the listen streams opened for it."""

    def __init__(self) -> None:
        self.streams = 0

    def listening(self, change: int) -> None:
        self.streams += change
