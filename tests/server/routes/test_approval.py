"""Approval modes over the API and the SDK: ``POST /v1/agents`` and ``PATCH
/v1/agents/{id}`` set ``approval`` (in place: no new epoch), every agent read shows it,
a bad value is a 4xx that changes nothing; the sync and async SDK register and update
with it, remote and embedded, on each dialect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybus import AsyncRelay, Relay
from relaybus.errors import InvalidInput
from relaybus.models import Approval
from tests.server.conftest import as_agent, problem, unchanged
from tests.support.live import LiveServer, live_server

HUNG = 30.0


def test_register_and_patch_set_the_mode_and_every_read_shows_it(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    token = cast("alice", approval="guarded", instance_id="run-1")
    cast("bob")

    got = http.get("/v1/agents/alice").json()
    patched = http.patch("/v1/agents/alice", json={"approval": "read-only"}).json()
    listed = {a["id"]: a["approval"] for a in http.get("/v1/agents").json()}
    with as_agent(http, token) as alice:  # its own token changes its own mode
        own = alice.patch("/v1/agents/alice", json={"approval": "open"}).json()

    assert got["approval"] == "guarded"
    assert (patched["approval"], patched["epoch"]) == ("read-only", 1)
    assert listed == {"alice": "read-only", "bob": "open"}
    assert (own["approval"], own["epoch"]) == ("open", 1)


def test_a_patch_without_approval_keeps_it_and_a_registration_states_it_anew(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice", approval="read-only", instance_id="run-1")

    kept = http.patch("/v1/agents/alice", json={"label": "Alice"}).json()
    again = http.post("/v1/agents", json={"id": "alice", "instance_id": "run-1"}).json()

    assert kept["approval"] == "read-only"
    assert (again["agent"]["approval"], again["agent"]["epoch"]) == ("open", 1)


@pytest.mark.parametrize("value", ["strict", "READ_ONLY", 1, ""])
def test_a_bad_mode_is_4xx_naming_the_field_and_changes_nothing(
    server: LiveServer, http: httpx.Client, cast: Callable[..., str], value: Any
) -> None:
    cast("alice", approval="guarded")

    with unchanged(server):
        registered = http.post("/v1/agents", json={"id": "bob", "approval": value})
        patched = http.patch("/v1/agents/alice", json={"approval": value})

    for reply in (registered, patched):
        body = problem(reply, 422)
        assert "approval" in body["detail"]


@pytest.fixture(params=["remote", "embedded"])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, database: str | None
) -> Iterator[dict[str, Any]]:
    """The arguments of ``Relay.open``: a live server, or the embedded store."""
    if request.param == "embedded":
        yield {"dir": tmp_path / "embedded", "database": database}
        return
    with live_server(tmp_path / "server", database=database) as srv:
        yield {"url": srv.url}


def test_the_sdk_registers_and_updates_the_mode(where: dict[str, Any]) -> None:
    with Relay.open(**where) as relay:
        alice = relay.register("alice", approval=Approval.GUARDED)
        assert alice.info().approval is Approval.GUARDED
        assert alice.update(approval="read-only").approval is Approval.READ_ONLY
        assert relay.register("bob").info().approval is Approval.OPEN
        with pytest.raises(InvalidInput):
            relay.register("carol", approval="sometimes")
        with pytest.raises(InvalidInput):
            alice.update(approval="sometimes")
        assert alice.info().approval is Approval.READ_ONLY
        assert [a.id for a in relay.agents()] == ["alice", "bob"]


def test_the_async_sdk_registers_and_updates_the_mode(where: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with AsyncRelay.open(**where) as relay:
            alice = await relay.register("alice", approval="read-only")
            assert (await alice.info()).approval is Approval.READ_ONLY
            updated = await alice.update(approval=Approval.OPEN)
            assert (updated.approval, updated.epoch) == (Approval.OPEN, alice.epoch)
            with pytest.raises(InvalidInput):
                await relay.register("carol", approval="nope")

    async def bounded() -> None:
        async with asyncio.timeout(HUNG):
            await scenario()

    asyncio.run(bounded())
