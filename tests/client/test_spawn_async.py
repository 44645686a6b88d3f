"""The async SDK's spawn methods (the sync twin is tested in tests/runtime/spawn):
an AsyncRelay on a tmp relay folder spawns through its warm relay, follows the
spawned agent's events as they come, and releases it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus.client import AsyncRelay, warm
from relaybus.models import SpawnedState, SpawnEventKind

PROGRAM = str(Path(__file__).parents[1] / "runtime" / "spawn" / "program.py")


@pytest.fixture
def relay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("RELAYBUS_"):
            monkeypatch.delenv(name)  # spawning needs the warm relay the suite turns off
    folder = tmp_path / ".relay"
    yield folder
    warm.stop(folder)  # it releases what still runs


def test_async_relay_spawns_follows_events_and_releases(relay_dir: Path) -> None:
    async def scenario() -> list[SpawnEventKind]:
        async with AsyncRelay.open(dir=relay_dir) as relay:
            since = await relay.last_event_id()
            agent = await relay.spawn(
                "async-one", command=[sys.executable, PROGRAM, "exit", "3"], headless=True
            )
            assert agent.state is SpawnedState.RUNNING
            kinds = []
            async for event in relay.spawn_events(after=since, timeout=60):
                kinds.append(event.kind)
                if event.kind is SpawnEventKind.EXITED:
                    assert event.code == 3 and event.last_lines == ["bye 3"]
                    break
            released = await relay.release("async-one", reason="checked")
            assert released.state is SpawnedState.RELEASED
            assert [a.name for a in await relay.spawned()] == ["async-one"]
            return kinds

    assert asyncio.run(scenario()) == [SpawnEventKind.SPAWNED, SpawnEventKind.EXITED]
