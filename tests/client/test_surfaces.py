"""The sync and async SDKs offer the same operations: the same public names with the same
signatures, ``async`` aside. The sync side is generated from the async one
(``scripts/unasync.py``, checked in CI); this shows a hand edit to either side."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from relaybus import AgentHandle, AsyncAgentHandle, AsyncRelay, Relay

#: Async names → their sync counterparts.
SYNC_NAMES = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
KEPT_DUNDERS = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__repr__"}

#: What the sync SDK offered before it was generated: none of it may go.
SYNC_BEFORE: dict[type[Any], set[str]] = {
    Relay: {
        "open", "store", "service", "register", "agent", "agents", "get_agent", "message",
        "thread", "deliveries", "tasks", "task", "task_history", "update_task", "events",
        "wait_events", "prune", "stream", "close", "__enter__", "__exit__",
    },
    AgentHandle: {
        "token", "info", "send", "reply", "inbox", "read", "mark_read", "mark_delivered",
        "unread_count", "wait", "tasks", "task", "task_history", "claim", "renew", "release",
        "update_task", "heartbeat", "update", "unregister", "messages", "__repr__",
    },
}  # fmt: skip


def sync_text(text: str) -> str:
    """An async annotation as its sync counterpart would read."""
    text = re.sub(r"\bAsyncGenerator\[(.+?), None\]", r"Generator[\1, None, None]", text)
    return re.sub(r"\bAsync([A-Z]\w*)", r"\1", text)


def members(cls: type[Any]) -> dict[str, Any]:
    """What ``cls`` defines or inherits (from a base shared with the other SDK class,
    like the tasks view), ``object``'s aside."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):
        found.update(vars(klass))
    return found


def surface(cls: type[Any]) -> dict[str, str]:
    """Public name (sync spelling) → what it is and its signature (sync spelling)."""
    found = {}
    for name, member in members(cls).items():
        if name.startswith("_") and name not in KEPT_DUNDERS:
            continue
        if isinstance(member, property):
            assert member.fget is not None
            shape = f"property -> {inspect.signature(member.fget).return_annotation}"
        elif isinstance(member, classmethod):
            shape = f"classmethod {inspect.signature(member.__func__)}"
        elif inspect.isfunction(member):
            shape = f"method {inspect.signature(member)}"
        else:
            shape = f"attribute {member!r}"
        found[SYNC_NAMES.get(name, name)] = sync_text(shape)
    return found


@pytest.mark.parametrize(
    ("sync", "asynchronous"), [(Relay, AsyncRelay), (AgentHandle, AsyncAgentHandle)]
)
def test_the_sync_and_async_sdks_offer_the_same_operations(
    sync: type[Any], asynchronous: type[Any]
) -> None:
    assert surface(sync) == surface(asynchronous)
    assert SYNC_BEFORE[sync] <= set(surface(sync))
    for name, member in members(sync).items():
        assert not inspect.iscoroutinefunction(member), name
