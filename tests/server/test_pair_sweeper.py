"""The server's background sweeper ends pairs with nobody reading them: an invite
nobody answered expires, and the sweep's run counts it in /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.live import UNUSED_TLS, live_server
from tests.support.poll import until

HUNG = 30.0


def test_the_sweeper_expires_an_invite_nobody_answered(
    tmp_path: Path, database: str | None
) -> None:
    with live_server(
        tmp_path, database=database, sweep_interval=0.1, pair_invite_seconds=0.3
    ) as srv:
        service = srv.service
        service.register("alice")
        service.register("bob")
        pair = service.pair_invite("alice", "bob", "fix CI")
        # Watch the log, not the pair: reading a pair would settle it lazily.
        ended = service.store.wait_for(lambda: service.events(kinds=["pair.ended"]), HUNG)
        assert [(e.data["pair_id"], e.data["reason"]) for e in ended] == [(pair.id, "expired")]
        counted = 'relaybus_sweep_changes_total{change="pairs_ended",job="sweep"} 1.0'
        with httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http:
            assert until(lambda: counted in http.get("/metrics").text, HUNG)
        assert [m.body for m in service.inbox("alice")][0].startswith(f"pair {pair.id} expired")
