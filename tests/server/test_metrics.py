"""``/metrics``: Prometheus text with requests by route template, messages, connections."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from relaybus.errors import InvalidInput
from relaybus.server.metrics import AccessLineFormatter, AccessLogHandler
from relaybus.server.run import _log_config
from relaybus.settings import Settings
from tests.server.conftest import ADMIN, HUNG, bearer, problem, register
from tests.support.live import UNUSED_TLS, live_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    reply = http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    labels = frozenset({"method": method, "route": route, "status": str(status)}.items())
    return samples.get(("relaybus_http_requests_total", labels), 0.0)


def test_requests_are_counted_by_route_template_and_status(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice")
    cast("bob")
    http.get("/v1/agents/alice")
    http.get("/v1/agents/bob")
    http.get("/v1/agents/nobody")
    http.get("/v1/agents/bob/inbox")
    http.get("/no/such/path")

    samples = scrape(http)

    assert requests(samples, "POST", "/v1/agents", 201) == 2
    assert requests(samples, "GET", "/v1/agents/{agent_id}", 200) == 2
    assert requests(samples, "GET", "/v1/agents/{agent_id}", 404) == 1
    assert requests(samples, "GET", "/v1/agents/{agent_id}/inbox", 200) == 1
    assert requests(samples, "GET", "<unmatched>", 404) == 1
    assert not [labels for name, labels in samples if ("route", "/v1/agents/alice") in labels]
    duration = (
        "relaybus_http_request_duration_seconds_count",
        frozenset({("route", "/v1/agents")}),
    )
    assert samples[duration] == 2


def test_messages_sent_and_unread_deliveries_follow_the_traffic(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    for name in ("alice", "bob", "carol"):
        cast(name)
    http.post("/v1/messages", json={"sender": "alice", "to": "broadcast", "body": "all"})
    http.post(
        "/v1/messages/batch",
        json={
            "sender": "alice",
            "messages": [{"to": "bob", "body": "1"}, {"to": "bob", "body": "2"}],
        },
    )
    http.post("/v1/agents/carol/inbox/read", json={"up_to": 10**6})

    samples = scrape(http)

    assert samples[("relaybus_messages_sent_total", frozenset())] == 3
    assert samples[("relaybus_unread_deliveries", frozenset({("workspace", "default")}))] == 3
    assert ("relaybus_messages_delivered_total", frozenset()) in samples
    assert ("relaybus_queue_depth", frozenset()) in samples
    for transport in ("sse", "ws", "longpoll"):
        labels = frozenset({("transport", transport)})
        assert samples[("relaybus_live_connections", labels)] == 0


def test_a_413_before_routing_is_counted_too(http: httpx.Client) -> None:
    http.post("/v1/messages", content=b"x" * 10**6, headers={"content-type": "application/json"})

    assert requests(scrape(http), "POST", "<unmatched>", 413) == 1


def test_metrics_are_open_on_a_server_without_any_token(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        reply = httpx.get(f"{server.url}/metrics", timeout=HUNG, verify=UNUSED_TLS)
    assert reply.status_code == 200
    assert "relaybus_messages_sent_total" in reply.text


def test_metrics_need_the_admin_token_on_a_server_that_has_one(tmp_path: Path) -> None:
    with live_server(tmp_path, admin_token=ADMIN) as server:
        with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
            client.headers.update(bearer(ADMIN))
            token = register(client, "alice")
            del client.headers["Authorization"]
            without = client.get("/metrics")
            as_agent = client.get("/metrics", headers=bearer(token))
            malformed = client.get("/metrics", headers={"Authorization": "Basic eA=="})
            as_admin = client.get("/metrics", headers=bearer(ADMIN))

    for refused in (without, as_agent, malformed):
        body = problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "/metrics" in body["detail"] or "Bearer" in body["detail"]
    assert as_admin.status_code == 200
    assert "relaybus_http_requests_total" in as_admin.text


def test_a_metrics_token_reads_metrics_and_nothing_else(tmp_path: Path) -> None:
    with live_server(tmp_path, metrics_token="scrape") as server:  # open mode otherwise
        with httpx.Client(base_url=server.url, timeout=HUNG, verify=UNUSED_TLS) as client:
            without = client.get("/metrics")
            scraper = client.get("/metrics", headers=bearer("scrape"))
            api_without_token = client.get("/v1/agents")
            api_with_scraper = client.get("/v1/agents", headers=bearer("scrape"))

    problem(without, 401)
    assert "RELAYBUS_METRICS_TOKEN" in without.json()["detail"]
    assert scraper.status_code == 200
    assert api_without_token.status_code == 200  # the rest of an open server stays open
    problem(api_with_scraper, 401)  # the metrics token is no API token


def test_an_empty_metrics_token_is_refused_at_start() -> None:
    with pytest.raises(InvalidInput, match="metrics token is empty"):
        Settings(metrics_token=" ").check_bind()


class _Flushes(io.StringIO):
    """A stream that counts its flushes (each one a write system call on a file)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_the_access_log_flushes_the_lines_of_one_loop_iteration_once() -> None:
    stream = _Flushes()
    handler = AccessLogHandler(stream)
    logger = logging.getLogger("tests.server.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:

        async def main() -> tuple[int, int]:
            for n in range(3):
                logger.info("line %d", n)
            before = stream.flushes
            await asyncio.sleep(0)  # the loop's next iteration
            return before, stream.flushes

        before, after = asyncio.run(main())
        assert (before, after) == (0, 1)
        assert stream.getvalue() == "line 0\nline 1\nline 2\n"
        logger.info("off the loop")  # at once, as StreamHandler does
        assert stream.flushes == 2 and stream.getvalue().endswith("off the loop\n")

        async def closed_before_its_flush() -> None:
            logger.info("last line of a loop")

        asyncio.run(closed_before_its_flush())  # asyncio.run ends with a last iteration
        assert stream.flushes == 3
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("colours", [False, True])
@pytest.mark.parametrize(
    ("level", "args"),
    [
        (logging.INFO, ("127.0.0.1:50312", "POST", "/v1/messages", "1.1", 201)),
        (logging.INFO, ("[::1]:4242", "GET", "/v1/agents?tag=a%20b", "1.1", 404)),
        (logging.INFO, ("127.0.0.1:1", "GET", "/", "2", 599)),  # no phrase
        (logging.WARNING, ("127.0.0.1:1", "GET", "/healthz", "1.0", 503)),
    ],
)
def test_the_access_lines_are_uvicorns_own(
    level: int, args: tuple[object, ...], colours: bool
) -> None:
    fmt = LOGGING_CONFIG["formatters"]["access"]["fmt"]
    record = logging.LogRecord(
        "uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    ours = AccessLineFormatter(fmt, use_colors=colours).format(record)
    assert ours == AccessFormatter(fmt, use_colors=colours).format(record)
    assert record.__dict__.get("status_code") is None  # the record itself is left alone


def test_relaybus_serve_logs_its_access_lines_with_the_lean_formatter() -> None:
    config = _log_config()
    assert (
        config["formatters"]["access"]["()"]
        == f"{AccessLineFormatter.__module__}.AccessLineFormatter"
    )
    assert config["formatters"]["access"]["fmt"] == LOGGING_CONFIG["formatters"]["access"]["fmt"]
