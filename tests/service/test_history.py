"""History for late joiners: broadcasts sent before an agent registered, read without
entering its inbox (both dialects)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from relaybus.errors import Forbidden, InvalidInput, NotFound
from relaybus.models import Message
from relaybus.service import Service

if TYPE_CHECKING:
    from tests.conftest import Snapshot


@pytest.fixture
def earlier(service: Service) -> Service:
    """Broadcasts without a channel and on two channels, a direct message and a
    tag-routed one, all sent before ``late`` registers."""
    service.register("alice")
    service.register("bob", tags=["backend"])
    service.send("alice", "broadcast", "hello all")
    service.send("alice", "broadcast", "deploy at 5", channel="deploys")
    service.send("alice", "broadcast", "lunch?", channel="social")
    service.send("alice", "bob", "just for bob")
    service.send("alice", "tag:backend", "backend only")
    service.register("late", channels=["deploys"])
    return service


def bodies(found: list[Message]) -> list[str]:
    return [m.body for m in found]


def test_a_late_joiner_reads_the_broadcasts_it_hears_newest_first(earlier: Service) -> None:
    assert bodies(earlier.history("late")) == ["deploy at 5", "hello all"]
    assert bodies(earlier.history("late", channel="deploys")) == ["deploy at 5"]
    assert bodies(earlier.history("late", broadcast=True)) == ["hello all"]
    assert bodies(earlier.history(None, broadcast=True)) == ["hello all"]


def test_history_takes_a_channel_or_broadcast_not_both(earlier: Service) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        earlier.history("late", channel="deploys", broadcast=True)


def test_history_never_enters_the_inbox_nor_shows_what_was_meant_for_others(
    earlier: Service, snapshot: Callable[[], Snapshot]
) -> None:
    before = snapshot()

    earlier.history("late")

    assert snapshot() == before  # no delivery written, nothing marked
    assert earlier.unread_count("late") == 0
    assert "just for bob" not in bodies(earlier.history(None))
    assert "backend only" not in bodies(earlier.history(None))


def test_an_agent_that_hears_every_channel_and_the_admin_read_every_broadcast(
    earlier: Service,
) -> None:
    earlier.register("everywhere")

    assert bodies(earlier.history("everywhere")) == ["lunch?", "deploy at 5", "hello all"]
    assert bodies(earlier.history(None, channel="social")) == ["lunch?"]


def test_history_pages_back_from_a_cursor(earlier: Service) -> None:
    first = earlier.history(None, limit=2)
    rest = earlier.history(None, before=first[-1].id, limit=2)

    assert bodies(first) == ["lunch?", "deploy at 5"]
    assert bodies(rest) == ["hello all"]
    assert earlier.history(None, before=rest[-1].id) == []


def test_a_channel_the_agent_does_not_hear_or_bad_input_is_refused(earlier: Service) -> None:
    with pytest.raises(Forbidden, match="does not hear channel 'social'"):
        earlier.history("late", channel="social")
    with pytest.raises(NotFound):
        earlier.history("ghost")
    bad: list[dict[str, Any]] = [
        {"channel": "a b"},
        {"before": 0},
        {"limit": 0},
        {"limit": 1001},
    ]
    for arguments in bad:
        with pytest.raises(InvalidInput):
            earlier.history("late", **arguments)
