"""Prometheus metrics of one server (prometheus-client), in a registry of its own.

Each :class:`Metrics` has its own ``CollectorRegistry``, so tests may run many
apps in one process. Request counts are labelled by route template
(``/v1/agents/{agent_id}``), never the raw path, to keep the label set small.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import re
import time
from typing import TextIO

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.logging import AccessFormatter

from ..service import Service
from .limits import HttpMiddleware

#: The ``route`` label of a request that matched no route (a 404 or a 413 before routing).
UNMATCHED = "<unmatched>"
TRANSPORTS = ("sse", "ws", "longpoll")

__all__ = ["CONTENT_TYPE", "AccessLogHandler", "Metrics", "RequestMetrics"]


class Metrics:
    """The server's metrics.

    Attributes:
        requests: HTTP requests, by ``method``, ``route`` (template) and ``status``.
        request_seconds: request durations (seconds), by ``route``; a stream or
            long-poll counts for its whole life.
        messages_sent: messages accepted (a batch counts each of its messages).
        messages_delivered: ``message.sent`` events pushed to a live connection,
            once per recipient connection.
        live_connections: open live connections, by ``transport`` (sse, ws, longpoll).
        queue_depth: events buffered for live connections (set by the hub).
        unread_deliveries: unread deliveries by ``workspace``, computed from the
            store at scrape time (:meth:`refresh`, from ``Service.backlog``).
        stuck_deliveries: deliveries queued longer than ``Settings.stuck_after``
            while their agent is not offline, by ``workspace`` (at scrape time).
        sweeps: background jobs this replica claimed and ran, by ``job``
            (``sweep``, ``prune``); in a cluster the replicas share the runs.
        sweep_changes: what those runs changed, by ``job`` and ``change``
            (``agents_offline``, ``tasks_released``, ``messages``, ...).
        listen_connections: PostgreSQL: the LISTEN connections this process
            opened (1 + reconnects); 0 on SQLite (at scrape time).
        callback_attempts: callback posts this replica made, by ``outcome``
            (``delivered``: a 2xx; ``failed``: anything else).
        callbacks_pending: callbacks waiting to be sent, every workspace (at scrape time).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "relaybus_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "relaybus_http_request_duration_seconds",
            "HTTP request durations by route template (seconds).",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
        )
        self.messages_sent = Counter(
            "relaybus_messages_sent", "Messages accepted by this server.", registry=r
        )
        self.messages_delivered = Counter(
            "relaybus_messages_delivered",
            "Messages pushed to a live connection of a recipient.",
            registry=r,
        )
        self.live_connections = Gauge(
            "relaybus_live_connections",
            "Open live connections by transport.",
            ["transport"],
            registry=r,
        )
        for transport in TRANSPORTS:
            self.live_connections.labels(transport)
        self.queue_depth = Gauge(
            "relaybus_queue_depth", "Events buffered for live connections.", registry=r
        )
        self.unread_deliveries = Gauge(
            "relaybus_unread_deliveries",
            "Unread deliveries by workspace (from the store, at scrape time).",
            ["workspace"],
            registry=r,
        )
        self.stuck_deliveries = Gauge(
            "relaybus_stuck_deliveries",
            "Deliveries queued past the stuck threshold while their agent is online, "
            "by workspace (from the store, at scrape time).",
            ["workspace"],
            registry=r,
        )
        self.sweeps = Counter(
            "relaybus_sweeps", "Background jobs this replica ran, by job.", ["job"], registry=r
        )
        self.sweep_changes = Counter(
            "relaybus_sweep_changes",
            "Rows background jobs run by this replica changed, by job and change.",
            ["job", "change"],
            registry=r,
        )
        self.listen_connections = Gauge(
            "relaybus_listen_connections",
            "PostgreSQL LISTEN connections this process opened (1 + reconnects).",
            registry=r,
        )
        self.callback_attempts = Counter(
            "relaybus_callback_attempts",
            "Callback posts this replica made, by outcome (delivered, failed).",
            ["outcome"],
            registry=r,
        )
        self.callbacks_pending = Gauge(
            "relaybus_callbacks_pending",
            "Callbacks waiting to be sent (from the store, at scrape time).",
            registry=r,
        )
        # (method, route, status) -> the labelled children: labels() costs a lock and a tuple.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def refresh(self, service: Service) -> None:
        """Recompute the gauges read from the store (blocking: call it in a thread)."""
        listening = service.store.listening
        self.listen_connections.set(0 if listening is None else listening.connections)
        self.callbacks_pending.set(service.pending_callbacks())
        backlog = service.backlog()
        self.unread_deliveries.clear()
        self.stuck_deliveries.clear()
        for workspace, figures in backlog.items():
            self.unread_deliveries.labels(workspace).set(figures.unread)
            self.stuck_deliveries.labels(workspace).set(figures.stuck)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class RequestMetrics(HttpMiddleware):
    """ASGI middleware counting every HTTP request in :class:`Metrics`.

    The route label is the matched route's template, read from the scope the
    router filled in (``scope["route"]``), or :data:`UNMATCHED`.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", None)
            template = UNMATCHED if path is None else _TEMPLATES.get(path) or _template(path)
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - started
            )


_TEMPLATES: dict[str, str] = {}
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _template(path: str) -> str:
    """``/v1/agents/{agent_id:path}`` -> ``/v1/agents/{agent_id}`` (the OpenAPI path)."""
    template = _TEMPLATES[path] = _CONVERTER.sub(r"{\1}", path)
    return template


class AccessLogHandler(logging.StreamHandler[TextIO]):
    """The access log's handler (``relaybus serve``): a ``logging.StreamHandler`` whose
    lines written on an event loop are flushed once at the end of the loop's current
    iteration, not once each.

    A flush is a ``write`` system call that also hands the GIL to the threads that
    wait for it (the group commit's), once per request; the requests a group
    commit answers finish in one iteration, so their lines go out in one write.
    Lines still appear before the loop waits for anything; a line written off a
    loop (or after its loop closed) is flushed at once, as by ``StreamHandler``.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def flush(self) -> None:
        """Flush now off a loop; on one, once the loop's current callbacks have run."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            scheduled = self._scheduled
            if scheduled is not None and scheduled.is_closed():
                scheduled = self._scheduled = None  # its flush never ran
            if scheduled is loop and loop is not None:
                return  # that flush is to come
            if loop is None or scheduled is not None:
                super().flush()
                return
            self._scheduled = loop
        loop.call_soon(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = None
            super().flush()


#: ``201`` -> ``"201 Created"``: the status as uvicorn's access line shows it.
_STATUS_LINES = {int(s): f"{int(s)} {s.phrase}" for s in http.HTTPStatus}


class AccessLineFormatter(AccessFormatter):
    """uvicorn's access formatter, the same lines without copying each record.

    Without colours (not a terminal: a service's log, a file, a pipe) it fills the
    format's fields from a view over the record instead of two copies of it and an
    ``HTTPStatus`` lookup; with colours it is uvicorn's own. The record's arguments
    are uvicorn's access record: ``(client_addr, method, full_path, http_version,
    status_code)``.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if self.use_colors or not isinstance(record.args, tuple) or len(record.args) != 5:
            return super().formatMessage(record)
        client_addr, method, full_path, http_version, status_code = record.args
        code = int(status_code)  # type: ignore[call-overload]
        fields = {
            "levelprefix": f"{record.levelname}:".ljust(9),
            "client_addr": client_addr,
            "request_line": f"{method} {full_path} HTTP/{http_version}",
            "status_code": _STATUS_LINES.get(code) or f"{code} ",
        }
        return self._style._fmt % collections.ChainMap(fields, record.__dict__)


def lean_log_records() -> None:
    """Log records of this process skip finding their caller's frame, thread,
    process and process name (the logging HOWTO's "Optimization"): on a relay the
    access log makes one record a request. Process-wide, so only for a process that
    is a relay and nothing else (``relaybus serve``, the warm relay), whose log
    formats use none of those fields.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
