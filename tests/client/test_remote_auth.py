"""The SDK's credentials over a relay server: the admin token, the per-agent tokens
registration issues, impersonation refusals and rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaybus import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Relay,
    Unauthorized,
)
from relaybus.client.backends import RemoteBackend
from relaybus.settings import Settings
from tests.support.live import UNUSED_TLS, LiveServer, live_server

ADMIN = "rb_test-admin-token"


@pytest.fixture
def open_server(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    """A loopback server without an admin token: every request may act as anyone."""
    with live_server(tmp_path, database=database) as srv:
        yield srv


@pytest.fixture
def token_server(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    """A server with an admin token: every request needs a token."""
    with live_server(tmp_path, database=database, admin_token=ADMIN) as srv:
        yield srv


class Recorded:
    """A remote relay whose requests' Authorization headers are kept, in order."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.bearers: list[tuple[str, str | None]] = []
        client = httpx.Client(
            base_url=url, event_hooks={"request": [self._record]}, verify=UNUSED_TLS
        )
        self.relay = Relay(RemoteBackend(Settings(url=url, token=token), client=client))

    def _record(self, request: httpx.Request) -> None:
        self.bearers.append((request.url.path, request.headers.get("Authorization")))


def test_registration_over_http_hands_out_the_agents_own_token(open_server: LiveServer) -> None:
    with Relay.open(url=open_server.url) as relay:
        me = relay.register("alice")
        first = me.token
        assert first is not None and first.startswith("rb_")
        assert isinstance(relay.backend, RemoteBackend)
        assert relay.backend.tokens == {"alice": first}
        again = relay.register("alice")  # a new instance: a new token replaces the old
        assert again.token is not None and again.token != first
        assert relay.backend.tokens == {"alice": again.token}
        again.unregister()
        assert relay.backend.tokens == {}


def test_an_embedded_handle_has_no_token(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path) as relay:
        assert relay.register("alice").token is None


def test_without_an_admin_token_calls_as_an_agent_carry_its_token(
    open_server: LiveServer,
) -> None:
    recorded = Recorded(open_server.url)
    with recorded.relay as relay:
        alice = relay.register("alice")
        relay.register("bob")
        recorded.bearers.clear()
        alice.send("bob", "hi")
        alice.inbox()
        relay.agents()
    mine = f"Bearer {alice.token}"
    assert recorded.bearers == [
        ("/v1/messages", mine),
        ("/v1/agents/alice/inbox", mine),
        ("/v1/agents", None),
    ]


def test_an_admin_token_is_sent_with_every_call(token_server: LiveServer) -> None:
    recorded = Recorded(token_server.url, token=ADMIN)
    with recorded.relay as relay:
        alice = relay.register("alice")
        relay.register("bob")
        alice.send("bob", "hi")
    assert {bearer for _, bearer in recorded.bearers} == {f"Bearer {ADMIN}"}


def test_relaybus_url_and_token_from_the_environment(
    token_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_URL", token_server.url)
    monkeypatch.setenv("RELAYBUS_TOKEN", ADMIN)
    with Relay.open() as relay:
        relay.register("alice")
        assert [a.id for a in relay.agents()] == ["alice"]


def test_token_mode_refuses_callers_without_a_known_token(token_server: LiveServer) -> None:
    with Relay.open(url=token_server.url) as anonymous:
        with pytest.raises(Unauthorized):
            anonymous.agents()
        with pytest.raises(Unauthorized):
            anonymous.register("alice")
    with Relay.open(url=token_server.url, token="rb_made-up") as forged:
        with pytest.raises(Unauthorized):
            forged.agents()


def test_an_agent_token_acts_as_its_agent_and_no_other(token_server: LiveServer) -> None:
    with Relay.open(url=token_server.url, token=ADMIN) as admin:
        alice_token = admin.register("alice").token
        admin.register("bob", capabilities=["review"])
        task_id = admin.agent("bob").send("alice", "job", claimable=True).task_id
        assert task_id is not None
    with Relay.open(url=token_server.url, token=alice_token) as as_alice:
        alice = as_alice.agent("alice")
        assert alice.send("bob", "hi from alice").sender == "alice"
        assert [m.body for m in alice.inbox()] == ["job"]
        assert alice.claim(task_id).assignee == "alice"
        bob = as_alice.agent("bob")  # reading who bob is: allowed
        with pytest.raises(Forbidden):
            bob.send("alice", "pretending to be bob")
        with pytest.raises(Forbidden):
            bob.inbox()
        with pytest.raises(Forbidden):
            bob.heartbeat()
        with pytest.raises(Forbidden):
            bob.update_task(task_id, progress=10)
        with pytest.raises(Forbidden):
            as_alice.register("bob")
        with pytest.raises(Forbidden):
            as_alice.prune()
        with pytest.raises(Forbidden):
            next(as_alice.stream(agent="bob"))


def test_an_unregistered_agents_token_stops_working(token_server: LiveServer) -> None:
    with Relay.open(url=token_server.url, token=ADMIN) as admin:
        token = admin.register("alice").token
        admin.register("bob")
        with Relay.open(url=token_server.url, token=token) as as_alice:
            as_alice.agent("alice").send("bob", "still here")
            admin.agent("alice").unregister()
            with pytest.raises(Unauthorized):
                as_alice.agents()


def test_a_handle_fenced_off_elsewhere_gets_conflict_as_embedded(
    open_server: LiveServer,
) -> None:
    # The second registration revokes the first client's token for alice; in open
    # mode that client still gets the embedded answer (stale epoch), not 401.
    with Relay.open(url=open_server.url) as first, Relay.open(url=open_server.url) as second:
        first.register("bob")
        old = first.register("alice")
        second.register("alice")
        with pytest.raises(Conflict, match="stale epoch"):
            old.send("bob", "from the past")
        second.agent("alice").unregister()
        with pytest.raises(NotFound):
            old.heartbeat()


def test_a_rate_limited_client_gets_the_wait_in_retry_after(
    tmp_path: Path, database: str | None
) -> None:
    with (
        live_server(tmp_path, database=database, rate_limit=0.01, rate_burst=1) as srv,
        Relay.open(url=srv.url) as relay,
    ):
        relay.agents()
        with pytest.raises(RateLimited) as caught:
            relay.agents()
    assert caught.value.retry_after > 0
    assert caught.value.status == 429
