"""Relay-server benchmark: HTTP sends, live delivery, broadcast fan-out, memory, and the peer.

Run: ``.venv/bin/python bench/server.py`` (``--quick`` for a smoke run).

Prints, from one run on one machine:
1. single-message sends (``POST /v1/messages``) per second next to a bare
   Starlette endpoint that parses and returns the same JSON, on the same
   server stack (uvicorn with the options ``relaybus serve`` uses, access log
   included), same client, same concurrency; the ratio is the figure (target
   >= 0.5), with the server's CPU per request;
2. batch sends (``POST /v1/messages/batch``), messages per second;
3. send-to-receive over the WebSocket (send frame -> event frame) and over
   SSE (``POST`` -> SSE event): sequential (send one, wait until the recipient
   has it, send the next) p50/p99 and msg/s, and pipelined msg/s;
4. a broadcast to 500 connected WebSocket subscribers: p50/p99 over repeats
   of the time until the last one has it (target p99 <= 250 ms);
5. the server's RSS with 1,000 idle connected agents, WebSocket and SSE
   (target <= 150 MB);
6. the peer, agent-relay 1.6.0 (``bench/peers/``): the same two-agent
   workload (64-byte bodies) as 3's WebSocket rows, rounds interleaved, and
   the ratios (targets: sequential p50 and p99 no worse, pipelined >= 2x);
   twice: as installed (its data on disk, where its per-message fsync and
   state-file rewrites make it follow the disk's latency), and with its data
   on tmpfs (``agent-relay*``, the peer at its fastest).

Each server is a separate process (``python -m relaybus serve --port 0`` on
a fresh relay directory; the bare app on the same uvicorn options), output to
a log file, stopped by its pid at the end; both inherit this process's open
files limit, raised to the hard limit. This process is the client: one
asyncio loop (uvloop), httpx and websockets. Client and server share the
machine's cores. All traffic is loopback; every loop is bounded in count and
every wait in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    TwoAgentRound,
    TwoAgentSummary,
    announced_server,
    cpu_pressure,
    cpu_seconds,
    percentile,
    raise_open_files_limit,
    rss_mib,
    until,
)
from bench.peers import agent_relay  # noqa: E402

#: Bytes of every message body (the peer comparison's size).
BODY = "x" * 64
#: Seconds any single wait may take before the benchmark gives up.
TIMEOUT = 60.0
#: Concurrent requests of the HTTP load (one connection each).
CONCURRENCY = 8
#: Concurrent handshakes while connecting many subscribers.
CONNECT_CONCURRENCY = 50


# -- the server processes ---------------------------------------------------

#: The baseline server: ``POST /v1/messages`` parses the JSON body and returns it
#: (201), on uvicorn with the options :func:`relaybus.server.serve` uses (access log
#: at info included), announcing itself as ``relaybus serve`` does.
BARE = """
import copy, socket
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def echo(request):
    return JSONResponse(await request.json(), status_code=201)

async def health(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/v1/messages", echo, methods=["POST"]), Route("/healthz", health)])

class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print(f"relaybus: serving http://127.0.0.1:{port} (bare)", flush=True)

Server(uvicorn.Config(
    app, host="127.0.0.1", port=0, log_level="info", log_config=copy.deepcopy(LOGGING_CONFIG),
    access_log=True, lifespan="on", timeout_graceful_shutdown=1, server_header=False,
)).run()
"""


@dataclass
class Server:
    """A running server process: ``url``, ``ws_url``, ``pid``."""

    url: str
    pid: int

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


@contextlib.contextmanager
def server_process(kind: str, folder: Path) -> Iterator[Server]:
    """Start a server process and stop it (SIGINT, by pid) after the block.

    ``kind`` "relaybus" runs ``python -m relaybus serve --port 0`` on a relay
    directory in ``folder``; "bare" runs :data:`BARE`. Their output goes to
    ``folder/server.log``.

    Raises:
        RuntimeError: it did not say where it listens within :data:`TIMEOUT`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    if kind == "relaybus":
        env["RELAYBUS_DIR"] = str(folder / ".relay")
        command = [sys.executable, "-m", "relaybus", "serve", "--port", "0"]
    else:
        command = [sys.executable, "-c", BARE]
    with announced_server(command, folder, env, TIMEOUT) as (url, pid):
        yield Server(url=url, pid=pid)


# -- clients ------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(http: httpx.AsyncClient, names: list[str]) -> dict[str, str]:
    """Register ``names`` (open mode: no token needed); returns each agent's token."""
    tokens: dict[str, str] = {}
    queue = list(reversed(names))

    async def worker() -> None:
        while queue:
            name = queue.pop()
            reply = await http.post("/v1/agents", json={"id": name})
            reply.raise_for_status()
            tokens[name] = reply.json()["token"]

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return tokens


class Arrivals:
    """Counts ``message.sent`` events reaching a receiver; lets the sender wait for the n-th.

    ``last`` is the ``perf_counter()`` time of the latest arrival.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self._target = 0
        self._event = asyncio.Event()

    def arrived(self) -> None:
        self.count += 1
        self.last = time.perf_counter()
        if self.count >= self._target:
            self._event.set()

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` messages have arrived (``TimeoutError`` after ``TIMEOUT``)."""
        if self.count >= count:
            return
        self._target = count
        self._event.clear()
        await asyncio.wait_for(self._event.wait(), TIMEOUT)


async def open_ws(server: Server, token: str) -> ClientConnection:
    """A WebSocket to ``/v1/ws`` as the token's agent, past its ``ready`` frame."""
    ws = await connect(
        f"{server.ws_url}/v1/ws",
        additional_headers=auth(token),
        ping_interval=None,
        max_queue=None,
        open_timeout=TIMEOUT,
    )
    ready = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if ready.get("type") != "ready":
        raise RuntimeError(f"expected the ready frame, got {ready}")
    return ws


async def read_ws(ws: ClientConnection, arrivals: Arrivals) -> None:
    """Count the ``message.sent`` events on ``ws`` until it closes; fail on an error frame."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async for frame in ws:
            doc = json.loads(frame)
            kind = doc["type"]
            if kind == "event" and doc["event"]["kind"] == "message.sent":
                arrivals.arrived()
            elif kind == "error":
                raise RuntimeError(f"the relay refused a request: {doc}")


async def read_sse(response: httpx.Response, arrivals: Arrivals, ready: asyncio.Event) -> None:
    """Count the ``message.sent`` events of an SSE response; set ``ready`` on its first frame."""
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            if kind == "ready":
                ready.set()
            elif kind == "message.sent":
                arrivals.arrived()
        elif not line:
            kind = ""


@contextlib.asynccontextmanager
async def sse_stream(
    http: httpx.AsyncClient, token: str, arrivals: Arrivals
) -> AsyncIterator[None]:
    """An open ``/v1/stream`` as the token's agent (past its ready frame), counting arrivals."""
    async with http.stream("GET", "/v1/stream", headers=auth(token)) as response:
        response.raise_for_status()
        ready = asyncio.Event()
        reader = asyncio.create_task(read_sse(response, arrivals, ready))
        try:
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            yield
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@contextlib.asynccontextmanager
async def tasks(*coros: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run ``coros`` as tasks for the block; cancel them after it (re-raising their errors)."""
    running = [asyncio.ensure_future(c) for c in coros]
    try:
        yield running
    finally:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- 1, 2: HTTP sends ------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """A load run: requests per second, server CPU per request (ms), client CPU (% of a core)."""

    rate: float
    server_cpu_ms: float
    client_cpu: float


async def post_load(server: Server, path: str, content: bytes, token: str, requests: int) -> Load:
    """``requests`` POSTs of ``content`` to ``path``, :data:`CONCURRENCY` at a time."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {**auth(token), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=TIMEOUT) as http:

        async def run(count: int) -> None:
            left = [count]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    reply = await http.post(path, content=content, headers=headers)
                    if reply.status_code != 201:
                        raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        await run(min(200, requests))  # warm-up: connections open, code paths hot
        cpu0, client0, t0 = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
        await run(requests)
        wall = time.perf_counter() - t0
        server_cpu = cpu_seconds(server.pid) - cpu0
        client_cpu = time.process_time() - client0
    return Load(requests / wall, 1000 * server_cpu / requests, 100 * client_cpu / wall)


async def http_sends(
    relay: Server, bare: Server, tokens: dict[str, str], requests: int, rounds: int
) -> tuple[list[Load], list[Load]]:
    """Single sends to relaybus and to the bare endpoint, rounds alternating."""
    content = json.dumps({"sender": "alice", "to": "bob", "body": BODY}).encode()
    mine: list[Load] = []
    baseline: list[Load] = []
    for _ in range(rounds):
        mine.append(await post_load(relay, "/v1/messages", content, tokens["alice"], requests))
        baseline.append(await post_load(bare, "/v1/messages", content, tokens["alice"], requests))
    return mine, baseline


async def batch_sends(
    relay: Server, tokens: dict[str, str], batches: int, size: int
) -> tuple[Load, int]:
    """``batches`` batch sends of ``size`` messages each; returns the load and ``size``."""
    item = {"to": "bob", "body": BODY}
    content = json.dumps({"sender": "alice", "messages": [item] * size}).encode()
    return await post_load(relay, "/v1/messages/batch", content, tokens["alice"], batches), size


# -- 3, 6: two agents ------------------------------------------------------


async def ws_round(
    server: Server, tokens: dict[str, str], sequential: int, pipelined: int
) -> TwoAgentRound:
    """The two-agent workload over WebSockets: alice sends frames, bob gets event frames."""
    frame = json.dumps({"type": "send", "to": "bob", "body": BODY})
    alice = await open_ws(server, tokens["alice"])
    bob = await open_ws(server, tokens["bob"])
    inbox, echoes = Arrivals(), Arrivals()  # bob's deliveries; alice sees her own sends too
    try:
        async with tasks(read_ws(bob, inbox), read_ws(alice, echoes)) as readers:
            latencies: list[float] = []
            start = time.perf_counter()
            for i in range(sequential):
                t0 = time.perf_counter()
                await alice.send(frame)
                await until(inbox.wait_for(i + 1), readers)
                latencies.append((inbox.last - t0) * 1000)
            sequential_s = time.perf_counter() - start
            t0 = time.perf_counter()
            for _ in range(pipelined):
                await alice.send(frame)
            await until(inbox.wait_for(sequential + pipelined), readers)
            pipelined_s = inbox.last - t0
            await until(echoes.wait_for(sequential + pipelined), readers)  # all stored
    finally:
        await alice.close()
        await bob.close()
    return TwoAgentRound(latencies, sequential_s, pipelined, pipelined_s)


async def sse_round(
    server: Server, tokens: dict[str, str], sequential: int, pipelined: int
) -> TwoAgentRound:
    """The two-agent workload with ``POST /v1/messages`` in and SSE out."""
    content = json.dumps({"sender": "alice", "to": "bob", "body": BODY}).encode()
    headers = {**auth(tokens["alice"]), "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=CONCURRENCY + 1)
    timeout = httpx.Timeout(TIMEOUT, read=None)
    inbox = Arrivals()
    async with (
        httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as http,
        sse_stream(http, tokens["bob"], inbox),
    ):

        async def post() -> None:
            reply = await http.post("/v1/messages", content=content, headers=headers)
            if reply.status_code != 201:
                raise RuntimeError(f"send: {reply.status_code} {reply.text[:200]}")

        base = inbox.count
        latencies: list[float] = []
        start = time.perf_counter()
        for i in range(sequential):
            t0 = time.perf_counter()
            await post()
            await inbox.wait_for(base + i + 1)
            latencies.append((inbox.last - t0) * 1000)
        sequential_s = time.perf_counter() - start
        left = [pipelined]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await post()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        await inbox.wait_for(base + sequential + pipelined)
        pipelined_s = inbox.last - t0
    return TwoAgentRound(latencies, sequential_s, pipelined, pipelined_s)


# -- 4: broadcast ------------------------------------------------------------


async def broadcast(server: Server, subscribers: int, repeats: int) -> tuple[list[float], float]:
    """Times (ms) from a broadcast ``POST`` to the last of ``subscribers`` WebSockets having
    it, and this process's CPU per broadcast (ms): the subscribers' share of those times."""
    names = [f"sub-{i:04d}" for i in range(subscribers)]
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        tokens = await register(http, ["caster", *names])
        sockets = await connect_many(server, [tokens[n] for n in names])
        counter = Arrivals()
        try:
            async with tasks(*(read_ws(ws, counter) for ws in sockets)) as readers:
                content = json.dumps({"sender": "caster", "to": "broadcast", "body": BODY})
                headers = {**auth(tokens["caster"]), "Content-Type": "application/json"}
                times: list[float] = []
                cpu = time.process_time()
                for i in range(repeats):
                    t0 = time.perf_counter()
                    reply = await http.post("/v1/messages", content=content, headers=headers)
                    if reply.status_code != 201:
                        raise RuntimeError(f"broadcast: {reply.status_code} {reply.text[:200]}")
                    await until(counter.wait_for((i + 1) * subscribers), readers)
                    times.append((counter.last - t0) * 1000)
                cpu = time.process_time() - cpu
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
    return times, 1000 * cpu / repeats


async def connect_many(server: Server, tokens: list[str]) -> list[ClientConnection]:
    """One WebSocket per token, :data:`CONNECT_CONCURRENCY` handshakes at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(token: str) -> ClientConnection:
        async with gate:
            return await open_ws(server, token)

    return list(await asyncio.gather(*(one(t) for t in tokens)))


# -- 5: memory -----------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Server RSS (MiB) before the connections, with them, and per connection (KiB)."""

    before: float
    connected: float

    def per_connection(self, count: int) -> float:
        return (self.connected - self.before) * 1024 / count


async def idle_memory(server: Server, agents: int, transport: str, settle: float) -> Memory:
    """RSS of the server with ``agents`` registered agents each holding an idle stream."""
    names = [f"idle-{i:04d}" for i in range(agents)]
    limits = httpx.Limits(max_connections=agents + CONCURRENCY)
    timeout = httpx.Timeout(TIMEOUT, read=None)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as http:
        tokens = await register(http, names)
        await asyncio.sleep(settle)  # let the registration burst's garbage go
        before = rss_mib(server.pid)
        if transport == "ws":
            sockets = await connect_many(server, [tokens[n] for n in names])
            try:
                await asyncio.sleep(settle)  # idle: what the connections cost at rest
                return Memory(before, rss_mib(server.pid))
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        connected, stop = Arrivals(), asyncio.Event()

        async def hold(token: str) -> None:
            """Open a stream (a few handshakes at a time) and keep it until ``stop``."""
            await gate.acquire()
            opened = False
            try:
                async with sse_stream(http, token, Arrivals()):
                    gate.release()
                    opened = True
                    connected.arrived()
                    await stop.wait()
            finally:
                if not opened:
                    gate.release()

        async with tasks(*(hold(tokens[n]) for n in names)) as holders:
            await until(connected.wait_for(agents), holders)
            await asyncio.sleep(settle)
            memory = Memory(before, rss_mib(server.pid))
            stop.set()
        return memory


# -- the run ---------------------------------------------------------------------


@dataclass
class Sizes:
    """How much of everything one run does."""

    requests: int = 3000
    rounds: int = 5
    batches: int = 100
    batch_size: int = 100
    sequential: int = 500
    pipelined: int = 1000
    subscribers: int = 500
    repeats: int = 30
    idle_agents: int = 1000
    settle: float = 2.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(300, 1, 10, 100, 100, 200, 100, 3, 200, 0.5)


def fmt_two(name: str, s: TwoAgentSummary) -> str:
    return (
        f"   {name:<13} sequential {s.sequential_rate:6.0f} msg/s  p50 {s.p50_ms:6.2f} ms"
        f"  p99 {s.p99_ms:6.2f} ms   pipelined {s.pipelined_rate:6.0f} msg/s"
    )


async def run(root: Path, sizes: Sizes, peers: list[Peer]) -> None:
    with (
        server_process("relaybus", root / "relay") as relay,
        server_process("bare", root / "bare") as bare,
    ):
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT) as http:
            tokens = await register(http, ["alice", "bob"])

        mine, baseline = await http_sends(relay, bare, tokens, sizes.requests, sizes.rounds)
        ratios = [m.rate / b.rate for m, b in zip(mine, baseline, strict=True)]
        print(
            f"\n1. single-message send, POST /v1/messages, {sizes.requests} requests x "
            f"{sizes.rounds} rounds, {CONCURRENCY} concurrent (medians)"
        )
        for name, loads in (("relaybus", mine), ("bare", baseline)):
            print(
                f"   {name:<9}{statistics.median(x.rate for x in loads):8.0f} req/s"
                f"   server CPU {statistics.median(x.server_cpu_ms for x in loads):5.2f} ms/req"
                f"   client CPU {statistics.median(x.client_cpu for x in loads):4.0f}%"
            )
        cpu_ratios = [
            b.server_cpu_ms / m.server_cpu_ms for m, b in zip(mine, baseline, strict=True)
        ]
        print(f"   ratio    {statistics.median(ratios):8.2f}  (target >= 0.50)")
        print(
            f"   server CPU per request, bare / relaybus: {statistics.median(cpu_ratios):.2f}"
            "  (the ratio if the client were free)"
        )

        load, size = await batch_sends(relay, tokens, sizes.batches, sizes.batch_size)
        print(f"\n2. batch send, POST /v1/messages/batch, {sizes.batches} x {size} messages")
        print(
            f"   {load.rate * size:8.0f} msg/s   ({load.rate:.0f} req/s, "
            f"server CPU {load.server_cpu_ms / size * 1000:.0f} us/msg)"
        )

        ws_rounds: list[TwoAgentRound] = []
        sse_rounds: list[TwoAgentRound] = []
        with contextlib.ExitStack() as stack:
            for peer in peers:
                peer.start(stack)
            for _ in range(sizes.rounds):  # interleaved: each round sees the same noise
                ws_rounds.append(await ws_round(relay, tokens, sizes.sequential, sizes.pipelined))
                sse_rounds.append(await sse_round(relay, tokens, sizes.sequential, sizes.pipelined))
                for peer in peers:
                    await peer.round(sizes.sequential, sizes.pipelined)
        print(
            f"\n3. send-to-receive, 64-byte bodies, {sizes.sequential} sequential + "
            f"{sizes.pipelined} pipelined x {sizes.rounds} rounds"
        )
        ws = TwoAgentSummary.of(ws_rounds)
        print(fmt_two("WebSocket", ws))
        print(fmt_two("SSE", TwoAgentSummary.of(sse_rounds)))
        print("   (WebSocket: send frame -> event frame; SSE: POST -> event; rates are medians)")

    with server_process("relaybus", root / "broadcast") as relay:
        times, client_ms = await broadcast(relay, sizes.subscribers, sizes.repeats)
    print(f"\n4. broadcast to {sizes.subscribers} WebSocket subscribers, {sizes.repeats} repeats")
    print(
        f"   until the last has it: p50 {statistics.median(times):6.1f} ms"
        f"   p99 {percentile(times, 0.99):6.1f} ms   (target p99 <= 250)"
    )
    print(
        f"   the subscribers' side (this process: read, inflate, parse {sizes.subscribers} frames):"
        f" {client_ms:.0f} ms CPU per broadcast"
    )

    print(f"\n5. server RSS with {sizes.idle_agents} idle connected agents (target <= 150 MB)")
    for transport in ("ws", "sse"):
        with server_process("relaybus", root / f"idle-{transport}") as relay:
            memory = await idle_memory(relay, sizes.idle_agents, transport, sizes.settle)
        print(
            f"   {transport.upper():<4} {memory.connected:6.1f} MiB"
            f"   ({memory.before:.1f} MiB before connecting,"
            f" {memory.per_connection(sizes.idle_agents):.0f} KiB per connection)"
        )

    print(
        f"\n6. the peer, agent-relay {agent_relay.VERSION}: the same two-agent workload, rounds"
        " interleaved with 3's"
    )
    print(fmt_two("relaybus", ws) + "  (WebSocket)")
    for peer in peers:
        if peer.rounds:
            print(fmt_two(peer.name, TwoAgentSummary.of(peer.rounds)) + f"  ({peer.where})")
        else:
            print(f"   {peer.name:<13} {peer.note}")
    for peer in peers:
        if peer.rounds:
            other = TwoAgentSummary.of(peer.rounds)
            print(
                f"   relaybus / {peer.name + ':':<13} p50 {ws.p50_ms / other.p50_ms:5.2f}x"
                f"   p99 {ws.p99_ms / other.p99_ms:5.2f}x   (targets <= 1.00x)"
                f"   pipelined {ws.pipelined_rate / other.pipelined_rate:5.2f}x  (target >= 2.00x)"
            )
    print(
        "   relaybus commits each message before delivering it (SQLite WAL, synchronous=NORMAL);"
        "\n   agent-relay inserts it (WAL, synchronous=FULL) and rewrites JSON state files per"
        " message,\n   then writes the delivery to the socket on the next event-loop turn"
    )


class Peer:
    """One configuration of the peer in a run: its daemon, its rounds, or why it has none."""

    def __init__(
        self, name: str, where: str, package: Path | None, note: str, *, in_memory: bool = False
    ) -> None:
        self.name, self.where, self.package, self.note = name, where, package, note
        self.in_memory = in_memory
        self.daemon: agent_relay.Daemon | None = None
        self.rounds: list[TwoAgentRound] = []

    def start(self, stack: contextlib.ExitStack) -> None:
        """Start the daemon (stopped when ``stack`` closes); on failure keep the reason."""
        if self.package is None:
            return
        try:
            self.daemon = stack.enter_context(
                agent_relay.daemon(self.package, in_memory=self.in_memory)
            )
        except agent_relay.PeerUnavailable as err:
            self.note = f"skipped: {err}"

    async def round(self, sequential: int, pipelined: int) -> None:
        """One round of the two-agent workload, unless the peer is unavailable."""
        if self.daemon is None or self.package is None:
            return
        try:
            self.rounds += await asyncio.to_thread(
                agent_relay.run_rounds,
                self.package,
                self.daemon.socket,
                sequential=sequential,
                pipelined=pipelined,
            )
        except agent_relay.PeerUnavailable as err:
            self.daemon, self.rounds, self.note = None, [], f"failed: {err}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--no-peer", action="store_true", help="skip agent-relay")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    raise_open_files_limit()
    print(
        f"relaybus server benchmark — python {sys.version.split()[0]}, uvicorn "
        f"{uvicorn.__version__}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores"
    )
    peer_package: Path | None = None
    peer_note = "skipped (--no-peer)"
    if not args.no_peer:
        try:
            peer_package = agent_relay.install()
        except agent_relay.PeerUnavailable as err:
            peer_note = f"skipped: {err}"
    print(f"CPU pressure (some, avg60) at start: {_pressure()}")
    with tempfile.TemporaryDirectory(prefix="relaybus-bench-") as tmp:
        peers = [
            Peer("agent-relay", "data on disk", peer_package, peer_note),
            Peer("agent-relay*", "data on tmpfs", peer_package, peer_note, in_memory=True),
        ]
        uvloop.run(run(Path(tmp), sizes, peers))
    print(f"\nCPU pressure (some, avg60) at the end: {_pressure()}")


def _pressure() -> str:
    value = cpu_pressure()
    if value is None:
        return "not reported"
    return f"{value:.0f}% (tasks waiting for a CPU; 0% is a quiet machine)"


if __name__ == "__main__":
    main()
