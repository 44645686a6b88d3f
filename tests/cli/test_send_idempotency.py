"""``send --idempotency-key``: the same key again returns the first message."""

from __future__ import annotations

import pytest

from relaybus import Relay
from tests.cli.conftest import Cli


@pytest.mark.slow
def test_send_with_the_same_idempotency_key_twice_stores_one_message(
    cli: Cli, relay: Relay
) -> None:
    first, again = (
        cli('--as alice send --to bob --idempotency-key "build-17" --json "build is green"')
        for _ in range(2)
    )
    other = cli('--as alice send --to bob --idempotency-key "build-17" "build is red"')
    bad = cli('--as alice send --to bob --idempotency-key "" "hi"')

    assert first.code == 0 and again.code == 0, (first, again)
    assert again.json() == first.json()
    assert [m.body for m in relay.agent("bob").inbox(unread_only=False)] == ["build is green"]
    assert other.code == 1, other
    assert len(other.err_lines) == 1
    assert "idempotency key 'build-17' was already used for a different request" in other.err
    assert bad.code == 2, bad
    assert len(bad.err_lines) == 1 and "invalid idempotency key ''" in bad.err
