"""Limits: request bodies over the limit (413 before parsing) and per-token rates (429)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaybus.errors import RateLimited
from relaybus.server.limits import RateLimiter
from tests.server.conftest import HUNG, as_agent, bearer, problem, register, unchanged
from tests.support.live import UNUSED_TLS, LiveServer, live_server

LIMIT = 2000


@pytest.fixture
def small(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    """An open server accepting request bodies of at most :data:`LIMIT` bytes."""
    with live_server(tmp_path, database=database, request_body_bytes=LIMIT) as srv:
        srv.service.register("alice")
        srv.service.register("bob")
        yield srv


def message_of(size: int) -> bytes:
    """A send request of exactly ``size`` bytes."""
    head, tail = b'{"sender": "alice", "to": "bob", "body": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def post(srv: LiveServer, content: bytes | Iterator[bytes]) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/messages",
        content=content,
        headers={"content-type": "application/json"},
        timeout=HUNG,
        verify=UNUSED_TLS,
    )


def test_a_body_at_the_limit_is_accepted(small: LiveServer) -> None:
    assert post(small, message_of(LIMIT)).status_code == 201


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    small: LiveServer,
) -> None:
    with unchanged(small):
        body = problem(post(small, message_of(LIMIT + 1)), 413)

    assert f"{LIMIT + 1} bytes" in body["detail"]
    assert body["limit"] == LIMIT


def test_a_chunked_body_over_the_limit_is_413_and_changes_nothing(small: LiveServer) -> None:
    content = message_of(LIMIT + 500)
    chunks = iter([content[:1000], content[1000:2000], content[2000:]])

    with unchanged(small):
        reply = post(small, chunks)

    body = problem(reply, 413)
    assert str(LIMIT) in body["detail"]


def test_a_chunked_body_under_the_limit_is_accepted(small: LiveServer) -> None:
    content = message_of(LIMIT - 10)

    assert post(small, iter([content[:700], content[700:]])).status_code == 201


def test_by_default_a_message_of_the_service_limit_fits_in_a_request(
    server: LiveServer, http: httpx.Client
) -> None:
    register(http, "alice")
    register(http, "bob")
    body = "é" * (server.service.settings.max_body_bytes // 2)  # 2 bytes each in UTF-8

    reply = http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": body})

    assert reply.status_code == 201


def test_over_the_rate_limit_is_429_with_retry_after_per_token(
    tmp_path: Path, database: str | None
) -> None:
    # 0.01 requests per second: nothing refills during the test.
    with live_server(
        tmp_path, database=database, admin_token="admin", rate_limit=0.01, rate_burst=3
    ) as srv:
        with httpx.Client(
            base_url=srv.url, timeout=HUNG, headers=bearer("admin"), verify=UNUSED_TLS
        ) as admin:
            alice_token = register(admin, "alice")
            bob_token = register(admin, "bob")
            with as_agent(admin, alice_token) as alice, as_agent(admin, bob_token) as bob:
                assert [alice.get("/v1/info").status_code for _ in range(3)] == [200] * 3
                refused = alice.get("/v1/info")
                other = bob.get("/v1/info")
            assert admin.get("/v1/info").status_code == 200  # the third of the admin's
            problem(admin.get("/v1/info"), 429)

    body = problem(refused, 429)
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert body["retry_after"] > 0
    assert other.status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)

    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    limiter.take("b")  # another key has its own bucket

    assert refused.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    clock.now += 10  # a long pause refills to the burst, not beyond
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_the_limiter_forgets_refilled_buckets_instead_of_growing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_keys=10)

    for n in range(10):
        limiter.take(f"caller-{n}")
    clock.now += 5  # every bucket is full again
    for n in range(10, 30):
        limiter.take(f"caller-{n}")
        assert len(limiter._buckets) <= 10
