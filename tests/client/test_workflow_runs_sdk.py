"""Workflow runs from the SDK, sync and async: the same results and errors on the
embedded store (SQLite and PostgreSQL), through the warm local relay (its socket), and
over HTTP from a live server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus import AsyncRelay, Relay
from relaybus.client import warm
from relaybus.client.warm_backend import open_relay
from relaybus.errors import Conflict, Forbidden, InvalidInput, NotFound
from relaybus.models import WorkflowRunStatus
from relaybus.settings import Settings
from tests.support.live import live_server
from tests.support.poll import until

SOURCE = "version: 1\nname: review\nsteps: {}\n"
HUNG = 60.0  # seconds: a relay starting on a loaded 2-core machine


@pytest.fixture(params=["embedded", "remote"])
def relay(request: pytest.FixtureRequest, tmp_path: Path, database: str | None) -> Iterator[Relay]:
    """A relay on the embedded store or a live server, on each dialect."""
    if request.param == "embedded":
        with Relay.open(dir=tmp_path / "embedded", database=database) as opened:
            yield opened
        return
    with live_server(tmp_path / "server", database=database) as srv:
        with Relay.open(url=srv.url) as opened:
            yield opened


def scenario(relay: Relay) -> None:
    """Every workflow run operation, with its errors, on ``relay``."""
    run = relay.create_workflow_run(
        "review", source=SOURCE, file="review.yaml", runner="laptop:1", state={"steps": {}}
    )
    assert (run.status, run.version, run.runner) == (WorkflowRunStatus.RUNNING, 1, "laptop:1")
    assert relay.workflow_run(run.id) == run

    moved = relay.update_workflow_run(
        run.id, version=1, state={"steps": {"plan": "done"}}, heartbeat=True
    )
    assert (moved.version, moved.state) == (2, {"steps": {"plan": "done"}})
    with pytest.raises(Conflict, match="at version 2, not 1"):
        relay.update_workflow_run(run.id, version=1, status="done")
    with pytest.raises(NotFound, match="no workflow run 999"):
        relay.workflow_run(999)
    with pytest.raises(InvalidInput):
        relay.create_workflow_run("Bad Name", source=SOURCE)
    with pytest.raises(InvalidInput, match="nothing to update"):
        relay.update_workflow_run(run.id, version=2)

    other = relay.create_workflow_run("deploy", source=SOURCE)
    done = relay.update_workflow_run(run.id, version=2, status=WorkflowRunStatus.DONE)
    assert done.finished_at is not None
    assert [r.id for r in relay.workflow_runs()] == [other.id, run.id]
    assert [r.id for r in relay.workflow_runs(name="review")] == [run.id]
    assert [r.id for r in relay.workflow_runs(status="running")] == [other.id]
    assert [r.id for r in relay.workflow_runs(limit=1)] == [other.id]
    kinds = [e.kind for e in relay.events() if e.kind.startswith("workflow.")]
    assert kinds == ["workflow.started", "workflow.started", "workflow.finished"]


def test_workflow_runs_through_the_sdk(relay: Relay) -> None:
    scenario(relay)


def test_workflow_runs_through_the_async_sdk(tmp_path: Path, database: str | None) -> None:
    async def run() -> None:
        async with (
            asyncio.timeout(HUNG),
            AsyncRelay.open(dir=tmp_path, database=database) as relay,
        ):
            created = await relay.create_workflow_run("review", source=SOURCE)
            updated = await relay.update_workflow_run(
                created.id, version=1, status="failed", state={"why": "step plan"}
            )
            assert (updated.status, updated.version) == ("failed", 2)
            assert await relay.workflow_run(created.id) == updated
            assert await relay.workflow_runs(status="failed") == [updated]
            with pytest.raises(Conflict):
                await relay.update_workflow_run(created.id, version=1, status="running")

    asyncio.run(run())


def test_workflow_runs_through_the_warm_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".relay"
    monkeypatch.delenv("RELAYBUS_DAEMON")
    relay = open_relay(Settings(dir=folder))
    try:
        assert type(relay.backend).__name__ == "WarmBackend"
        scenario(relay)
    finally:
        relay.close()
        info = warm.probe(folder)
        if info is not None and info.pid is not None:
            os.kill(info.pid, signal.SIGTERM)
            until(lambda: not _alive(info.pid), timeout=HUNG)


def test_an_agent_token_is_refused_by_the_sdk(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, admin_token="admin-token") as srv,
        Relay.open(url=srv.url, token="admin-token") as admin,
    ):
        token = admin.register("alice").token
        assert token is not None
        with Relay.open(url=srv.url, token=token) as alice:
            with pytest.raises(Forbidden, match="admin token"):
                alice.workflow_runs()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
