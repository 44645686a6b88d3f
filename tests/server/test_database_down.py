"""A database that goes away is a 503 with a reason and Retry-After, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import _migrated_template
from tests.support.live import UNUSED_TLS, live_server
from tests.support.pg import drop_database, fresh_database_url

HUNG = 30.0


def test_requests_get_503_with_retry_after_while_the_database_is_gone(tmp_path: Path) -> None:
    url = fresh_database_url(_migrated_template)
    try:
        with (
            live_server(tmp_path, database=url) as srv,
            httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http,
        ):
            assert http.post("/v1/agents", json={"id": "alice"}).status_code == 201
            drop_database(url)  # terminates every connection, the pool's included
            reply = http.post("/v1/agents", json={"id": "bob"})
            assert reply.status_code == 503, reply.text
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.headers["retry-after"] == "1"
            assert "the database is unavailable" in reply.json()["detail"]
            assert http.get("/readyz").status_code == 503
    finally:
        drop_database(url)
