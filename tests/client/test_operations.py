"""Each operation's HTTP request is written once, in :mod:`relaybus.client.operations`
(the integration operations in :mod:`relaybus.client.integration_requests`, the pair
operations in :mod:`relaybus.client.pair_requests`, listing messages in
:mod:`relaybus.client.message_requests`): every SDK
call (:mod:`relaybus.client.calls`) carries the request of its namesake there,
and what the SDK sends over HTTP is byte for byte what it sent when the calls built
their own requests through the :mod:`relaybus.wire` models (``sdk_requests.json``,
recorded then: method, path, query, body bytes, headers in order, timeout)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from relaybus.client import (
    integration_requests,
    message_requests,
    operations,
    pair_requests,
    spawn_requests,
    workflow_run_requests,
)
from relaybus.client.request import Request
from relaybus.client.transport import Call, HTTPSession
from relaybus.settings import Settings
from tests.server.test_contract import SAMPLES, build, builders

#: What the SDK sent for each builder (``NAME required`` / ``NAME every``), as
#: :func:`sent` gives it; a fresh idempotency key reads ``<uuid>``.
RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "sdk_requests.json").read_text(encoding="utf-8")
)


def sent(call: Call[Any]) -> dict[str, Any]:
    """What :class:`HTTPSession` hands httpx for ``call`` (no token: open mode)."""
    found = HTTPSession(Settings(url="http://127.0.0.1:9")).request(call)
    headers = [[k, v] for k, v in found["headers"].items()]
    if found["headers"].get("Idempotency-Key", "").count("-") == 4:  # a fresh uuid4
        headers = [[k, "<uuid>" if k == "Idempotency-Key" else v] for k, v in headers]
    content = found["content"]
    return {
        "method": found["method"],
        "url": found["url"],
        "params": found["params"],
        "content": None if content is None else content.decode("utf-8"),
        "headers": headers,
        "timeout": repr(found.get("timeout")),
    }


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_sdk_sends_the_bytes_it_sent_before(name: str) -> None:
    builder, variant = name.split()

    assert sent(build(builder, builders()[builder], every=variant == "every")) == RECORDED[name]


def test_every_sdk_call_was_recorded() -> None:
    # (register with its required arguments only sends this machine's host and cwd)
    recorded = {name.split()[0] for name in RECORDED}

    assert recorded == set(builders())


@pytest.mark.parametrize("name", sorted(builders()))
def test_every_sdk_call_carries_the_request_of_its_operation(name: str) -> None:
    call = build(name, builders()[name], every=True)
    make = (
        getattr(operations, name, None)
        or getattr(integration_requests, name, None)
        or getattr(message_requests, name, None)
        or getattr(pair_requests, name, None)
        or getattr(workflow_run_requests, name, None)
        or getattr(spawn_requests, name)
    )
    takes = inspect.signature(make).parameters
    request = make(**{p: v for p, v in SAMPLES.items() if p in takes})

    assert isinstance(call.request, Request)
    assert fields(call.request) == fields(request)


def fields(request: Request) -> dict[str, Any]:
    """The request's fields, its body built."""
    return {**request.fields(), "body": request.json_body()}
