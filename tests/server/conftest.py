"""Fixtures for the REST API tests: a real server (``tests/support/live.py``) and httpx clients.

``server`` is open mode (loopback, no admin token); ``secured`` has the admin
token :data:`ADMIN`. Both run each test twice, ``[sqlite]`` and ``[postgresql]``
(the ``database`` fixture of ``tests/conftest.py``); a test that starts its own
server passes ``database=database`` to :func:`live.live_server`. Agents are
registered through the API itself (:func:`register`), which also hands back
their tokens. :func:`unchanged` proves that a refused request wrote nothing,
on either dialect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import snapshot_rows
from tests.support.live import UNUSED_TLS, LiveServer, live_server

#: The admin token of :func:`secured` servers.
ADMIN = "test-admin-token"
#: Seconds an HTTP call may take before the test calls it hung.
HUNG = 30.0


def bearer(token: str) -> dict[str, str]:
    """``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    """A relay server in open mode, on each dialect."""
    with live_server(tmp_path, database=database) as srv:
        yield srv


@pytest.fixture
def secured(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    """A relay server with the admin token :data:`ADMIN`, on each dialect (a test that
    takes both :func:`server` and this one has them share one database)."""
    with live_server(tmp_path, admin_token=ADMIN, database=database) as srv:
        yield srv


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the open-mode :func:`server` (no token: admin)."""
    with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
        yield client


@pytest.fixture
def admin(secured: LiveServer) -> Iterator[httpx.Client]:
    """A client of the :func:`secured` server carrying the admin token."""
    with httpx.Client(
        base_url=secured.url, timeout=HUNG, headers=bearer(ADMIN), verify=UNUSED_TLS
    ) as client:
        yield client


def register(client: httpx.Client, agent_id: str, **fields: Any) -> str:
    """Register ``agent_id`` through the API; returns its token."""
    reply = client.post("/v1/agents", json={"id": agent_id, **fields})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    return token


def as_agent(base: httpx.Client, token: str) -> httpx.Client:
    """A client of the same server acting with an agent ``token``."""
    return httpx.Client(
        base_url=base.base_url, timeout=HUNG, headers=bearer(token), verify=UNUSED_TLS
    )


def problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    """Check ``reply`` is a problem+json with ``status``; returns the problem."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["type"] == "about:blank"
    return body


@contextlib.contextmanager
def unchanged(srv: LiveServer) -> Iterator[None]:
    """Asserts that the store's rows are the same after the block as before it."""
    before = snapshot_rows(srv.service.store)
    yield
    assert snapshot_rows(srv.service.store) == before


@pytest.fixture
def cast(http: httpx.Client) -> Callable[..., str]:
    """``cast("alice", tags=[...])`` registers an agent on the open server; returns its token."""
    return lambda agent_id, **fields: register(http, agent_id, **fields)
