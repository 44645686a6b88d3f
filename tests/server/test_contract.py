"""The wire contract between the server and the client, checked both ways.

Every operation of the served OpenAPI document (method and path template) has
exactly one :class:`~relaybus.client.transport.Call` builder in
:mod:`relaybus.client.calls`, and every builder, built with sample arguments
(all optional ones given too), names an operation of the document: its method,
its path (matched against the templates), its query parameters and the fields
of its body. A route added on one side only fails here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from relaybus.client import calls
from relaybus.client.transport import Call
from tests.support.live import UNUSED_TLS, live_server

#: Operations that have no Call builder, and why. (The WebSocket route, ``/v1/ws``,
#: is not an HTTP operation: the OpenAPI document does not list it.)
NOT_CALLS = {
    # Server-Sent Events: a stream the client follows (client/streams.py), not one answer.
    ("GET", "/v1/stream"),
    # Probes for load balancers and orchestrators: about the process, not the relay.
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    # The Prometheus exposition, read by a scraper.
    ("GET", "/metrics"),
    # The server describing itself (relaybus doctor reads it): an embedded relay has none.
    ("GET", "/v1/info"),
}
#: Long-poll builders: the same operation as another builder, holding the request
#: open with ``?wait=``. Long-poll builder → the builder of its operation.
LONG_POLLS = {"wait": "inbox", "wait_events": "events", "wait_deliveries": "deliveries"}
#: A sample value for every parameter of every builder (an agent id with "/" and "@",
#: as ids may have: the path must still match one segment).
SAMPLES: dict[str, Any] = {
    "add_capabilities": ["chat"],
    "add_tags": ["python"],
    "agent_days": 30.0,
    "agent_id": "team/alice@host",
    "approval": "guarded",
    "assignee": "bob",
    "before": 9,
    "broadcast": True,
    "body": "hello",
    "callback_url": "https://ops.example/cb",
    "capabilities": ["review"],
    "capability": "review",
    "channel": "ops",
    "channels": ["ops"],
    "claimable": True,
    "creator": "alice",
    "cwd": "/src",
    "dedupe_key": "prod-5xx",
    "delivery_id": 4,
    "digest": "ab" * 32,
    "epoch": 2,
    "external_url": "https://grafana.example/d/1",
    "file": "flows/review.yaml",
    "heartbeat": True,
    "host": "laptop",
    "idempotency_key": "key-1",
    "ids": [1, 2],
    "join_channels": ["ci"],
    "instance_id": "instance-1",
    "integration": "alertmanager",
    "items": [{"to": "bob", "body": "one"}],
    "kinds": ["message."],
    "label": "Alice",
    "lease": 60.0,
    "leave_channels": ["ops"],
    "limit": 10,
    "mark_read": True,
    "message_days": 7.0,
    "message_id": 7,
    "meta": {"k": "v"},
    "metadata": {"service": "api"},
    "name": "alertmanager",
    "newest_first": False,
    "note": "halfway",
    "objective": "fix CI",
    "online_only": True,
    "pair_id": 5,
    "participant": "dave",
    "pid": 1234,
    "priority": "high",
    "progress": 50,
    "q": "deploy",
    "rate_limit": 60,
    "recipient": "carol",
    "remove_capabilities": ["deploy"],
    "remove_tags": ["old"],
    "reply_to": 3,
    "result": "merged",
    "scopes": ["tasks:create"],
    "secret": True,
    "run_id": 6,
    "runner": "laptop:42",
    "sender": "alice",
    "since": 5,
    "source": "grafana",
    "state": "read",
    "status": "done",
    "subject": "review",
    "sweep": False,
    "tag": "backend",
    "tags": ["backend"],
    "target": "cap:ops",
    "targets": ["cap:ops"],
    "task_id": 7,
    "thread": 3,
    "timeout": 1.5,
    "title": "5xx high",
    "to": "bob",
    "tool": "codex",
    "unread_only": False,
    "up_to": 9,
    "version": 3,
    "via": "pty",
    "viewer": "bob",
    "workspace": "default",
    # spawned agents (issue 19)
    "cli": "claude",
    "command": ["python3", "agent.py"],
    "enter": True,
    "env": {"PATH": "/usr/bin"},
    "headless": True,
    "idle_seconds": 2.0,
    "lines": 50,
    "model": "sonnet",
    "reason": "done",
    "restart": "on-failure",
    "task": "review the diff",
    "text": "/status",
}

Operation = tuple[str, str]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The OpenAPI document a running server serves."""
    with live_server(tmp_path_factory.mktemp("contract")) as srv:
        reply = httpx.get(f"{srv.url}/openapi.json", timeout=30.0, verify=UNUSED_TLS)
        reply.raise_for_status()
        yield reply.json()


def builders() -> dict[str, Callable[..., Call[Any]]]:
    """Every call builder that ``relaybus.client.calls`` exports, by name."""
    found = {name: getattr(calls, name) for name in calls.__all__}
    return {name: value for name, value in found.items() if inspect.isfunction(value)}


def build(name: str, builder: Callable[..., Call[Any]], *, every: bool) -> Call[Any]:
    """``builder`` called with sample arguments: the required ones, or ``every`` one."""
    arguments: dict[str, Any] = {}
    for parameter in inspect.signature(builder).parameters.values():
        if parameter.default is not inspect.Parameter.empty and not every:
            continue
        assert parameter.name in SAMPLES, f"calls.{name}: add a sample for {parameter.name!r}"
        arguments[parameter.name] = SAMPLES[parameter.name]
    call = builder(**arguments)
    assert isinstance(call, Call), f"calls.{name} did not build a Call"
    return call


def templates(document: dict[str, Any]) -> dict[Operation, re.Pattern[str]]:
    """Each operation → a pattern its concrete paths match (an integer path parameter
    matches digits only, any other one segment)."""
    found: dict[Operation, re.Pattern[str]] = {}
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            kinds = {
                p["name"]: p["schema"].get("type")
                for p in operation.get("parameters", [])
                if p["in"] == "path"
            }

            def segment(match: re.Match[str], kinds: dict[str, Any] = kinds) -> str:
                return "-?[0-9]+" if kinds[match.group(1)] == "integer" else "[^/]+"

            pattern = re.sub(r"\\\{(\w+)\\\}", segment, re.escape(template))
            found[(method.upper(), template)] = re.compile(pattern)
    return found


def operation_of(call: Call[Any], document: dict[str, Any]) -> list[Operation]:
    """The operations of ``document`` that ``call``'s method and path match."""
    return [
        (method, template)
        for (method, template), pattern in templates(document).items()
        if method == call.request.method and pattern.fullmatch(call.request.path)
    ]


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or the component its ``$ref`` names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def test_every_operation_of_the_document_has_exactly_one_call_builder(
    document: dict[str, Any],
) -> None:
    served = set(templates(document))
    assert NOT_CALLS <= served, f"stale exceptions: {NOT_CALLS - served}"
    built: dict[Operation, list[str]] = {op: [] for op in served}
    for name, builder in builders().items():
        if name in LONG_POLLS:
            continue
        for op in operation_of(build(name, builder, every=False), document):
            built[op].append(name)
    for op in sorted(served - NOT_CALLS):
        assert len(built[op]) == 1, f"{op[0]} {op[1]}: call builders {built[op]}, not exactly one"
    for op in sorted(NOT_CALLS):
        assert built[op] == [], f"{op[0]} {op[1]} is an exception yet has {built[op]}"


@pytest.mark.parametrize("every", [False, True], ids=["required", "every-argument"])
def test_every_call_builder_sends_an_operation_of_the_document(
    document: dict[str, Any], every: bool
) -> None:
    for name, builder in builders().items():
        call = build(name, builder, every=every)
        matched = operation_of(call, document)
        request = call.request
        assert len(matched) == 1, f"calls.{name}: {request.method} {request.path}: {matched}"
        method, template = matched[0]
        operation = document["paths"][template][method.lower()]
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        sent = set(request.params or ())
        assert sent <= query, f"calls.{name}: query {sent - query} not in {method} {template}"
        if request.json_body() is None:
            continue
        assert "requestBody" in operation, f"calls.{name}: a body to {method} {template}"
        content = operation["requestBody"]["content"]["application/json"]["schema"]
        schema = resolve(content, document)
        if "anyOf" in schema:  # an optional body: the object or null
            schema = resolve(next(s for s in schema["anyOf"] if s.get("type") != "null"), document)
        body = list(request.json_body())
        fields = set(body)
        assert fields <= set(schema["properties"]), f"calls.{name}: body {fields}, {schema}"
        assert set(schema.get("required", ())) <= fields, f"calls.{name}: body {fields}"
        # in the order of the body model's fields, as the wire models gave them
        assert body == [p for p in schema["properties"] if p in fields], f"calls.{name}"


def test_a_long_poll_builder_waits_on_the_operation_of_its_builder(
    document: dict[str, Any],
) -> None:
    every = builders()
    for name, target in LONG_POLLS.items():
        polled, plain = (build(n, every[n], every=False) for n in (name, target))
        assert operation_of(polled, document) == operation_of(plain, document)
        params = polled.request.params
        assert params is not None and params["wait"] == SAMPLES["timeout"]
        assert polled.request.wait == SAMPLES["timeout"]


def test_the_samples_name_no_parameter_that_no_builder_has() -> None:
    used = {p for b in builders().values() for p in inspect.signature(b).parameters}
    assert set(SAMPLES) <= used, f"unused samples: {set(SAMPLES) - used}"
