"""Integrations: events in, signed callbacks out, against a real ``relaybus serve``.

Run: ``.venv/bin/python bench/integrations.py [--rounds N] [--seconds S] [--callbacks N]
[--drain N] [--quick]``.

Issue 16's figures. One ``python -m relaybus serve --port 0`` (admin token, default log
level: an access line per request) on a fresh relay directory, with two integrations
declared through ``RELAYBUS_INTEGRATIONS`` (a rate limit far above the load): ``ingress``
without a callback URL, ``hooked`` with one. One agent (``cap:ops``) hears the tasks.

1. **Ingress**: 8 concurrent posters, each on its own raw keep-alive connection
   (``bench/rest.py``'s ``RawConnection``: a few microseconds of this process's CPU a
   request), post ``POST /v1/integrations/events`` as ``ingress`` for ``--seconds``:
   - ``new``: every event has a new dedupe key, so each opens a task and sends its
     claimable message (201);
   - ``repeat``: each poster repeats a key of its own, so each event after its first
     raises an occurrence count (200);
   - ``one key``: the 8 posters repeat one key, so they queue on that key's task;
   - ``send``, the baseline: ``POST /v1/messages`` of a claimable message from an
     agent to ``cap:ops``, which opens a task too, without an integration.
   Figures: requests per second, and the server's CPU per request (``/proc``).
2. **Callback latency**: ``--callbacks`` events as ``hooked``, one at a time, each
   opening a task; the receiver (a stdlib ``ThreadingHTTPServer`` in this process on
   127.0.0.1, verifying each signature with ``relaybus.integrations.signing``) notes
   when each ``task.created`` arrives. Latency is from the change (the callback's
   ``created_at``: the server's clock when the transaction began, on the same host)
   to the receiver, p50 and p99; and from the post's start, for comparison.
3. **Outbox drain**: the receiver answers each callback after 50 ms; 8 posters post
   ``--drain`` events as ``hooked`` as fast as the server takes them, so the outbox
   backs up; the rate is callbacks received over the time from the first to the last.
   The sender posts up to 8 at once, so 8 / 50 ms = 160 per second bounds it.

Prints each round and the medians (latencies over all samples). All traffic is
loopback; every loop is bounded in count and every wait in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BlockingConnection,
    announced_server,
    cpu_pressure,
    cpu_seconds,
    percentile,
)
from bench.rest import RawConnection  # noqa: E402
from relaybus.integrations import signing  # noqa: E402

#: Seconds any single wait may take before the benchmark gives up.
TIMEOUT = 60.0
#: Concurrent posters (one connection each).
POSTERS = 8
ADMIN = "bench-admin"
INGRESS_TOKEN = "rbi_bench-ingress"
HOOKED_TOKEN = "rbi_bench-hooked"
SECRET = "whsec_bench"
#: The receiver's answer time in the drain part (seconds).
DRAIN_DELAY = 0.05
#: Callbacks the sender posts at once (``CallbackSender``'s default concurrency).
SENDER_CONCURRENCY = 8
WORKLOADS = ("send", "new", "repeat", "one key")


# -- the callback receiver ---------------------------------------------------------------


@dataclass
class Arrival:
    """One callback received: ``perf_counter()`` and wall-clock times, and its body."""

    at: float
    wall: float
    payload: dict[str, Any]


@dataclass
class Sink:
    """What the receiver got: the arrivals in order, the refused signatures, and the
    answer delay (seconds) it applies now."""

    delay: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    refused: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float) -> None:
        """Return once ``count`` callbacks have arrived.

        Raises:
            RuntimeError: they did not within ``timeout`` seconds.
        """
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise RuntimeError(
                    f"{len(self.arrivals)} of {count} callbacks arrived in {timeout:g} s "
                    f"({self.refused} refused)"
                )


class SinkHandler(BaseHTTPRequestHandler):
    server: SinkServer
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool uses it

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        at, wall = time.perf_counter(), time.time()
        sink = self.server.sink
        try:
            signing.verify(SECRET, self.headers.get(signing.HEADER), body)
        except signing.InvalidSignature:
            with sink.changed:
                sink.refused += 1
            self.answer(400)
            return
        with sink.changed:
            sink.arrivals.append(Arrival(at, wall, json.loads(body)))
            sink.changed.notify_all()
        if sink.delay:
            time.sleep(sink.delay)  # the receiver's own work, simulated
        self.answer(204)

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sink: Sink) -> None:
        super().__init__(("127.0.0.1", 0), SinkHandler)
        self.sink = sink


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, Sink]]:
    """The callback receiver on a free loopback port, in a thread; yields its URL."""
    sink = Sink()
    server = SinkServer(sink)
    thread = threading.Thread(target=server.serve_forever, name="bench-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/relaybus", sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


# -- the relay ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Relay:
    url: str
    pid: int


@contextlib.contextmanager
def relay_server(folder: Path, callback_url: str) -> Iterator[Relay]:
    """``relaybus serve --port 0`` of this checkout on a fresh relay in ``folder``, with
    the integrations ``ingress`` and ``hooked`` declared; stopped by its pid after."""
    folder.mkdir(parents=True)
    common = {"targets": ["cap:ops"], "rateLimitPerMinute": 1_000_000}
    declared = [
        {"name": "ingress", "token": INGRESS_TOKEN, **common},
        {"name": "hooked", "token": HOOKED_TOKEN, "callbackUrl": callback_url, "secret": SECRET}
        | common,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env |= {
        "RELAYBUS_DIR": str(folder / ".relay"),
        "RELAYBUS_TOKEN": ADMIN,
        "RELAYBUS_INTEGRATIONS": json.dumps(declared),
    }
    command = [sys.executable, "-m", "relaybus", "serve", "--port", "0"]
    with announced_server(command, folder, env, TIMEOUT) as (url, pid):
        relay = Relay(url, pid)
        conn = BlockingConnection(url, TIMEOUT)
        try:
            for agent in ({"id": "ops-bot", "capabilities": ["ops"]}, {"id": "bench-sender"}):
                body = json.dumps(agent).encode()
                status, answer = conn.request(
                    "POST", "/v1/agents", body, {"Authorization": f"Bearer {ADMIN}"}
                )
                if status != 201:
                    raise RuntimeError(f"register: {status} {answer[:200]!r}")
        finally:
            conn.close()
        yield relay


def event_request(url: str, token: str, key: str | None, title: str = "disk full") -> bytes:
    """A whole ``POST /v1/integrations/events`` request."""
    event: dict[str, Any] = {"title": title, "body": "95% used", "source": "bench"}
    if key is not None:
        event["dedupe_key"] = key
    body = json.dumps(event).encode()
    return (
        f"POST /v1/integrations/events HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def send_request(url: str) -> bytes:
    """A whole ``POST /v1/messages`` request: a claimable message from an agent to
    ``cap:ops`` (the baseline: what an event sends, without the integration's part)."""
    message = {"sender": "bench-sender", "to": "cap:ops", "subject": "disk full"}
    body = json.dumps(message | {"body": "95% used", "claimable": True}).encode()
    return (
        f"POST /v1/messages HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Authorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- 1 and 3: concurrent posters ---------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Events posted, over ``seconds``, and the server's CPU per event (ms)."""

    events: int
    seconds: float
    server_cpu_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def post_events(
    relay: Relay, token: str, workload: str, seconds: float, limit: int, tag: str
) -> Load:
    """:data:`POSTERS` posters of ``workload`` for ``seconds`` or ``limit`` events in all,
    whichever ends first (dedupe keys start with ``tag``).

    Raises:
        RuntimeError: an answer other than 201 or 200.
    """
    conns = [await RawConnection.open(relay.url) for _ in range(POSTERS)]
    left = [limit]
    done = [0]

    async def poster(n: int, conn: RawConnection, deadline: float) -> None:
        i = 0
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            i += 1
            if workload == "send":
                raw = send_request(relay.url)
            else:
                key = {"new": f"{tag}-{n}-{i}", "repeat": f"{tag}-{n}", "one key": tag}[workload]
                raw = event_request(relay.url, token, key)
            status, answer = await conn.request(raw)
            if status not in (200, 201):
                raise RuntimeError(f"event: {status} {answer[:200]!r}")
            done[0] += 1

    try:
        cpu0 = cpu_seconds(relay.pid)
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(poster(n, c, deadline) for n, c in enumerate(conns)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(relay.pid) - cpu0
    finally:
        for conn in conns:
            conn.close()
    return Load(done[0], elapsed, 1000 * cpu / max(done[0], 1))


# -- 2: callback latency -----------------------------------------------------------------


def callback_latencies(
    relay: Relay, sink: Sink, count: int, tag: str
) -> tuple[list[float], list[float]]:
    """``count`` events one at a time, each waiting for its ``task.created`` callback.

    Returns:
        the latencies (ms) from the change (``created_at``) and from the post's start.
    """
    headers = {"Authorization": f"Bearer {HOOKED_TOKEN}"}
    from_change: list[float] = []
    from_post: list[float] = []
    for i in range(count):
        base = len(sink.arrivals)
        body = json.dumps({"title": "disk full", "dedupe_key": f"{tag}-{i}"}).encode()
        # A connection each: a callback late by more than uvicorn's keep-alive (5 s)
        # would find a kept one closed.
        conn = BlockingConnection(relay.url, TIMEOUT)
        try:
            sent = time.time()
            status, answer = conn.request("POST", "/v1/integrations/events", body, headers)
        finally:
            conn.close()
        if status != 201:
            raise RuntimeError(f"event: {status} {answer[:200]!r}")
        task_id = json.loads(answer)["task"]["id"]
        sink.wait_for(base + 1, TIMEOUT)
        arrival = sink.arrivals[base]
        if arrival.payload["task"]["id"] != task_id:
            raise RuntimeError(f"callback of task {arrival.payload['task']['id']}, not {task_id}")
        changed = datetime.fromisoformat(arrival.payload["created_at"]).timestamp()
        from_change.append((arrival.wall - changed) * 1000)
        from_post.append((arrival.wall - sent) * 1000)
    return from_change, from_post


def drain(relay: Relay, sink: Sink, count: int, tag: str) -> tuple[Load, float, float]:
    """``count`` callbacks through a receiver that answers in :data:`DRAIN_DELAY`.

    Returns:
        the posting load; callbacks drained per second from the first arrival to the
        last; and the same over the backlog left once the posting ended.
    """
    sink.delay = DRAIN_DELAY
    base = len(sink.arrivals)
    try:
        load = asyncio.run(post_events(relay, HOOKED_TOKEN, "new", TIMEOUT, count, tag))
        posted = time.perf_counter()
        sink.wait_for(base + load.events, TIMEOUT + load.events * DRAIN_DELAY)
    finally:
        sink.delay = 0.0
    arrived = sink.arrivals[base : base + load.events]
    backlog = [a for a in arrived if a.at >= posted]
    overall = (len(arrived) - 1) / (arrived[-1].at - arrived[0].at)
    alone = (len(backlog) - 1) / (backlog[-1].at - backlog[0].at) if len(backlog) > 8 else 0.0
    return load, overall, alone


@contextlib.contextmanager
def server_log_on_error(log: Path) -> Iterator[None]:
    """Print the end of the server's log if the block fails."""
    try:
        yield
    except Exception:
        print(log.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
        raise


# -- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each ingress load (5)")
    parser.add_argument("--callbacks", type=int, default=200, help="sequential, per round (200)")
    parser.add_argument("--drain", type=int, default=400, help="callbacks per round (400)")
    parser.add_argument("--quick", action="store_true", help="1 round, small numbers")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.callbacks, args.drain = 1, 2.0, 50, 160
    loads: dict[str, list[Load]] = {name: [] for name in WORKLOADS}
    from_change: list[float] = []
    from_post: list[float] = []
    drains: list[float] = []
    backlogs: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="relaybus-integrations-") as tmp,
        receiver() as (callback_url, sink),
        relay_server(Path(tmp) / "relay", callback_url) as relay,
        server_log_on_error(Path(tmp) / "relay" / "server.log"),
    ):
        asyncio.run(post_events(relay, INGRESS_TOKEN, "new", 1.0, 200, "warm"))  # warm-up
        callback_latencies(relay, sink, 5, "warm")
        for n in range(args.rounds):
            for workload in WORKLOADS:
                tag = f"r{n}-{workload.replace(' ', '')}"
                load = asyncio.run(
                    post_events(relay, INGRESS_TOKEN, workload, args.seconds, 10**9, tag)
                )
                loads[workload].append(load)
            changes, posts = callback_latencies(relay, sink, args.callbacks, f"r{n}-latency")
            from_change += changes
            from_post += posts
            posted, rate, alone = drain(relay, sink, args.drain, f"r{n}-drain")
            drains.append(rate)
            backlogs.append(alone)
            ingress = ", ".join(
                f"{w} {loads[w][-1].rate:.0f}/s ({loads[w][-1].server_cpu_ms:.2f} ms CPU)"
                for w in WORKLOADS
            )
            print(
                f"round {n + 1}: ingress {ingress}; callback p50 "
                f"{percentile(changes, 0.5):.2f} ms p99 {percentile(changes, 0.99):.2f} ms; "
                f"drain {rate:.0f}/s, backlog alone {alone:.0f}/s ({posted.events} posted at "
                f"{posted.rate:.0f}/s)",
                flush=True,
            )
        if sink.refused:
            raise RuntimeError(f"the receiver refused {sink.refused} signatures")
    print(
        f"\nmedians of {args.rounds} rounds ({POSTERS} posters, one agent hearing the tasks; "
        f"CPU pressure avg60 {cpu_pressure()}%)"
    )
    for workload in WORKLOADS:
        rate = statistics.median(x.rate for x in loads[workload])
        cpu = statistics.median(x.server_cpu_ms for x in loads[workload])
        print(f"ingress, {workload}: {rate:.0f} events/s, {cpu:.2f} ms server CPU each")
    print(
        f"callback latency from the change ({len(from_change)} sequential): p50 "
        f"{percentile(from_change, 0.5):.2f} ms, p99 {percentile(from_change, 0.99):.2f} ms, "
        f"max {max(from_change):.0f} ms ({sum(x > 1000 for x in from_change)} over 1 s); "
        f"from the post's start: p50 {percentile(from_post, 0.5):.2f} ms, "
        f"p99 {percentile(from_post, 0.99):.2f} ms"
    )
    bound = SENDER_CONCURRENCY / DRAIN_DELAY
    print(
        f"outbox drain, receiver answering in {DRAIN_DELAY * 1000:.0f} ms: "
        f"{statistics.median(drains):.0f} callbacks/s while posting and after, "
        f"{statistics.median(backlogs):.0f}/s for the backlog alone (bound {bound:.0f}/s)"
    )


if __name__ == "__main__":
    main()
