"""A pair's messages as the hooks show them: ``pair N`` on each, and how to answer, the
same through the hook's own SQLite and HTTP reads as through the service."""

from __future__ import annotations

from pathlib import Path

from relaybus import Relay
from relaybus.tools.hooks import direct
from relaybus.tools.hooks.logic import render
from tests.support.live import live_server


def pair_mail(relay: Relay) -> int:
    """alice invites bob, bob accepts, alice sends a pair message; returns the pair id."""
    alice, bob = relay.register("alice", pid=None), relay.register("bob", pid=None)
    pair = alice.pair_invite("bob", "fix CI")
    bob.pair_accept(pair.id)
    alice.pair_send(pair.id, "I take the parser")
    return pair.id


def test_the_hooks_show_the_pair_of_a_message_however_they_read_it(tmp_path: Path) -> None:
    with Relay.open(dir=tmp_path / "relay") as relay:
        pair_id = pair_mail(relay)
        unread = relay.agent("bob").inbox(unread_only=True, newest_first=False)
        expected = render(relay.agent("bob"), unread)
        page = direct.sqlite_mail(tmp_path / "relay" / "relay.db", "default", "bob")

    assert [m.pair for m in page.mail] == [pair_id, pair_id]
    assert direct.render_mail(page.mail) == expected
    assert expected.count(f"pair {pair_id}") >= 3
    assert "task(action=pair_send" in expected and "pair_accept" in expected


def test_the_hooks_http_read_shows_the_pair_too(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, Relay.open(url=srv.url) as relay:
        pair_id = pair_mail(relay)
        page = direct.http_mail(srv.url, None, "default", "bob", timeout=30.0)

    assert [m.pair for m in page.mail] == [pair_id, pair_id]
    assert f"#{page.mail[1].id} from alice, pair {pair_id}" in direct.render_mail(page.mail)
