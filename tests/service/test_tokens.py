"""Bearer tokens: issued with a registration, stored hashed, revoked with the agent."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from relaybus.models import Credential
from relaybus.service import Service, hash_token, new_token
from relaybus.store.schema import tokens
from tests.conftest import Clock, Snapshot


def test_new_tokens_are_prefixed_random_and_hash_to_hex() -> None:
    a, b = new_token(), new_token()
    assert a != b
    assert a.startswith("rb_") and len(a) == 3 + 43
    assert hash_token(a) != hash_token(b)
    assert len(hash_token(a)) == 64 and int(hash_token(a), 16) >= 0


def test_a_registration_token_authenticates_as_its_agent(service: Service) -> None:
    token = new_token()
    service.register("alice", workspace="team", token_hash=hash_token(token))
    assert service.authenticate(hash_token(token)) == Credential(workspace="team", agent_id="alice")
    assert service.authenticate(hash_token(new_token())) is None


def test_only_the_digest_is_stored(service: Service) -> None:
    token = new_token()
    service.register("alice", token_hash=hash_token(token))
    with service.store.read() as conn:
        stored = conn.execute(sa.select(tokens)).all()
    assert [row.token_hash for row in stored] == [hash_token(token)]
    assert token not in repr(stored)


def test_registering_again_replaces_the_earlier_token(service: Service) -> None:
    first, second = new_token(), new_token()
    service.register("alice", token_hash=hash_token(first))
    service.register("alice", token_hash=hash_token(second))
    assert service.authenticate(hash_token(first)) is None
    assert service.authenticate(hash_token(second)) == Credential(
        workspace="default", agent_id="alice"
    )


def test_registering_without_a_token_keeps_the_current_one(service: Service) -> None:
    token = new_token()
    service.register("alice", instance_id="one", token_hash=hash_token(token))
    service.register("alice", instance_id="one")
    assert service.authenticate(hash_token(token)) is not None


def test_unregistering_revokes_the_agents_token(service: Service) -> None:
    alice, bob = new_token(), new_token()
    service.register("alice", token_hash=hash_token(alice))
    service.register("bob", token_hash=hash_token(bob))
    service.unregister("alice")
    assert service.authenticate(hash_token(alice)) is None
    assert service.authenticate(hash_token(bob)) is not None


def test_pruning_a_long_gone_agent_revokes_its_token(service: Service, clock: Clock) -> None:
    token = new_token()
    service.register("alice", token_hash=hash_token(token))
    service.update_agent("alice", status="offline")
    clock.advance(30 * 86400)
    assert service.prune(agent_days=7).agents == 1
    assert service.authenticate(hash_token(token)) is None


def test_a_refused_registration_stores_no_token(
    service: Service, snapshot: Callable[[], Snapshot]
) -> None:
    before = snapshot()
    try:
        service.register("bad id!", token_hash=hash_token(new_token()))
    except Exception as exc:  # the InvalidInput is the point: nothing may change
        assert type(exc).__name__ == "InvalidInput"
    assert snapshot() == before
