"""The SDK lists messages and a page's receipts, embedded and over a server (open mode
and with the admin token): on a relay the workspace's, on an agent's handle its own."""

from __future__ import annotations

from relaybus import Relay
from tests.client.test_client_relay import relay  # noqa: F401 (the fixture: every mode)


def test_a_relay_and_an_agent_handle_list_what_each_may_see(relay: Relay) -> None:  # noqa: F811
    alice = relay.register("alice")
    bob = relay.register("bob", tags=["backend"])
    carol = relay.register("carol")
    hello = alice.send("bob", "hello bob", subject="Greeting")
    alice.send("tag:backend", "build green")
    carol.send("bob", "carol's own")
    bob.read()  # marks bob's mail read

    everything = relay.list_messages()
    page = relay.list_messages(limit=2)
    older = relay.list_messages(before=page[-1].id)
    as_carol = carol.list_messages()
    receipts = relay.receipts([m.id for m in everything])

    assert [m.body for m in everything] == ["carol's own", "build green", "hello bob"]
    assert page + older == everything
    assert [m.body for m in relay.list_messages(q="HELLO", sender="alice")] == ["hello bob"]
    assert [m.body for m in relay.list_messages(tag="backend")] == ["build green"]
    assert [m.body for m in relay.list_messages(thread=hello.id)] == ["hello bob"]
    assert [m.body for m in as_carol] == ["carol's own"]
    assert carol.list_messages(sender="alice") == []
    assert [(d.agent_id, d.state.value) for d in receipts] == [("bob", "read")] * 3
    assert carol.receipts([hello.id]) == []
