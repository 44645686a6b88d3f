"""Bad numbers, deep meta and unknown agents through the SDK, embedded and over HTTP:
the same :class:`RelayError` subclass with the same message, and nothing stored.

The refused calls share one relay per dialect (with alice, bob and an open task, and a
server on it for the remote SDK), set up once (:class:`~tests.support.pristine.Pristine`):
each test gets it only when every row is as the setup left it, and one that changed a row
fails and has the relay set up anew for the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaybus import InvalidInput, NotFound, Relay, RelayError
from relaybus.bounds import MAX_ID, MAX_LIMIT, MAX_META_DEPTH
from relaybus.client import calls
from relaybus.service import Service
from relaybus.store import Store
from tests.conftest import DIALECTS, Clock, open_test_store, snapshot_rows
from tests.support.live import LiveServer, server_settings
from tests.support.pristine import Pristine

HUGE = 2**63
#: The server serving each shared store, by the store's id.
_servers: dict[int, LiveServer] = {}


@contextlib.contextmanager
def serving(store: Store) -> Iterator[LiveServer]:
    """A relay server on ``store`` for the block."""
    srv = LiveServer(Service(store), server_settings(store.settings))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def shared_relay(dialect: str, folder: Path) -> Iterator[Store]:
    """A store with alice and bob and a task alice offered bob, and a server on it."""
    folder.mkdir()
    with open_test_store(dialect, folder, Clock()) as store, serving(store) as srv:
        relay = Relay.embedded(Service(store))
        relay.register("alice")
        relay.register("bob")
        relay.agent("alice").send("bob", "PR 7", claimable=True)
        _servers[id(store)] = srv
        try:
            yield store
        finally:
            del _servers[id(store)]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine[Store]]:
    folder = tmp_path_factory.mktemp("worlds")
    made = iter(range(1, 1_000_000))
    kept = Pristine(
        lambda dialect: shared_relay(dialect, folder / f"{dialect}-{next(made)}"),
        snapshot_rows,
    )
    yield kept
    kept.close()


@pytest.fixture(params=DIALECTS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, worlds: Pristine[Store]
) -> Iterator[Store]:
    """For a test that uses ``unchanged``, the :func:`shared_relay` of its dialect, which it
    must leave as it found it; a fresh store otherwise."""
    if "unchanged" in request.fixturenames:
        with worlds.kept(request.param) as shared:
            yield shared
        return
    with open_test_store(request.param, tmp_path, Clock()) as opened:
        yield opened


@pytest.fixture
def unchanged() -> None:
    """The test runs on the :func:`shared_relay` and must leave every row as it was."""


@pytest.fixture(params=["embedded", "remote"])
def relay(request: pytest.FixtureRequest, store: Store) -> Iterator[Relay]:
    """The SDK on the test's store (each dialect): embedded, or through a real server."""
    if request.param == "embedded":
        yield Relay.embedded(Service(store))
        return
    with contextlib.ExitStack() as stack:
        srv = _servers.get(id(store)) or stack.enter_context(serving(store))
        yield stack.enter_context(Relay.open(url=srv.url))


def nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


Attempt = Callable[[Relay], object]
ATTEMPTS: dict[str, tuple[type[RelayError], str, Attempt]] = {
    "huge message id": (InvalidInput, f"not {HUGE}", lambda r: r.message(HUGE)),
    "zero message id": (InvalidInput, "between 1 and", lambda r: r.message(0)),
    "negative thread": (InvalidInput, "not -1", lambda r: r.thread(-1)),
    "huge receipts": (InvalidInput, f"not {HUGE}", lambda r: r.deliveries(HUGE)),
    "huge task": (InvalidInput, f"not {HUGE}", lambda r: r.task(HUGE)),
    "huge task history": (InvalidInput, f"not {HUGE}", lambda r: r.task_history(HUGE)),
    "huge claim": (InvalidInput, f"not {HUGE}", lambda r: r.agent("bob").claim(HUGE)),
    "huge update": (
        InvalidInput,
        f"not {HUGE}",
        lambda r: r.agent("bob").update_task(HUGE, progress=5),
    ),
    "huge reply_to": (InvalidInput, f"not {HUGE}", lambda r: r.agent("alice").reply(HUGE, "hi")),
    "id past the bound": (InvalidInput, f"not {MAX_ID + 1}", lambda r: r.message(MAX_ID + 1)),
    "huge cursor": (InvalidInput, f"not {HUGE}", lambda r: r.events(since=HUGE)),
    "huge inbox cursor": (
        InvalidInput,
        f"not {HUGE}",
        lambda r: r.agent("bob").inbox(since=HUGE),
    ),
    "huge mark read": (InvalidInput, f"not {HUGE}", lambda r: r.agent("bob").mark_read([HUGE])),
    "huge up_to": (InvalidInput, f"not {HUGE}", lambda r: r.agent("bob").mark_read(up_to=HUGE)),
    "too many tasks": (
        InvalidInput,
        f"limit must be between 1 and {MAX_LIMIT}, not 100000",
        lambda r: r.tasks(limit=100_000),
    ),
    "too many events": (
        InvalidInput,
        f"limit must be between 1 and {MAX_LIMIT}",
        lambda r: r.events(limit=MAX_LIMIT + 1),
    ),
    "deep meta": (
        InvalidInput,
        f"nested more than {MAX_META_DEPTH} levels",
        lambda r: r.agent("alice").send("bob", "hi", meta=nested(5000)),
    ),
    "meta one too deep": (
        InvalidInput,
        f"nested more than {MAX_META_DEPTH} levels",
        lambda r: r.agent("alice").send("bob", "hi", meta=nested(MAX_META_DEPTH + 1)),
    ),
    "deep meta at registration": (
        InvalidInput,
        f"nested more than {MAX_META_DEPTH} levels",
        lambda r: r.register("dave", meta=nested(5000)),
    ),
    "deep meta in an update": (
        InvalidInput,
        f"nested more than {MAX_META_DEPTH} levels",
        lambda r: r.agent("bob").update(meta=nested(5000)),
    ),
    "unknown agent's inbox": (
        NotFound,
        "no agent 'bobb' (did you mean 'bob'?)",
        lambda r: r.backend.run(calls.inbox("bobb", workspace=r.workspace)),
    ),
    "unknown agent's wait": (
        NotFound,
        "no agent 'bobb' (did you mean 'bob'?)",
        lambda r: r.backend.run(calls.wait("bobb", 60, workspace=r.workspace)),
    ),
    "unknown agent's count": (
        NotFound,
        "no agent 'bobb' (did you mean 'bob'?)",
        lambda r: r.backend.run(calls.unread_count("bobb", workspace=r.workspace)),
    ),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_bad_input_is_the_same_relay_error_embedded_and_remote_and_stores_nothing(
    relay: Relay, store: Store, name: str
) -> None:
    kind, says, attempt = ATTEMPTS[name]
    before = snapshot_rows(store)

    with pytest.raises(RelayError) as caught:
        attempt(relay)

    assert type(caught.value) is kind, caught.value
    assert says in caught.value.message
    assert snapshot_rows(store) == before


def test_embedded_and_remote_accept_the_same_largest_limit(relay: Relay) -> None:
    relay.register("alice")
    assert relay.tasks(limit=MAX_LIMIT) == []
    assert len(relay.events(limit=MAX_LIMIT)) == 1
