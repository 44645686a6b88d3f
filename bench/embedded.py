"""Embedded-store benchmark: send throughput vs raw sqlite3, inbox latency, wake-up latency.

Run: ``.venv/bin/python bench/embedded.py`` (``--quick`` for a smoke run).
``--before CHECKOUT`` (a checkout with its own ``.venv``, e.g. the main branch) runs the
reads of part 2 also with that checkout's interpreter and code, each read round in a
fresh process on a store seeded by that process (its own schema), the two checkouts
taking turns for ``--read-rounds`` rounds; medians of the rounds' p50 and p99.

Prints, from one run on one machine:
1. sequential send throughput through the SDK next to raw ``sqlite3`` writing
   the same rows (message + delivery + event, one transaction each) with the
   same durability settings (WAL, synchronous=NORMAL); the ratio is the figure
   (target >= 0.5);
2. inbox read latency p50/p99 with 100k messages stored;
3. cross-process ``wait`` wake-up latency p50/p99 (target p50 <= 5 ms,
   p99 <= 25 ms) and the CPU an idle waiter burns.
The machine is shared and noisy: rounds alternate SDK and raw, medians are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from relaybus import Relay
from relaybus.store.engine import SQLITE_BUSY_TIMEOUT_MS


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sdk_sends(folder: Path, count: int) -> float:
    """Messages per second sent alice → bob through the SDK."""
    with Relay.open(dir=folder) as relay:
        alice = relay.register("alice")
        relay.register("bob")
        body = "x" * 200
        start = time.perf_counter()
        for _ in range(count):
            alice.send("bob", body)
        return count / (time.perf_counter() - start)


def raw_sends(folder: Path, count: int) -> float:
    """The same rows written with the stdlib driver: the floor we compare against."""
    with Relay.open(dir=folder) as relay:  # same schema and indexes, via migrations
        relay.register("alice")
        relay.register("bob")
    conn = sqlite3.connect(folder / "relay.db", isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    body = "x" * 200
    start = time.perf_counter()
    for _ in range(count):
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE agents SET last_seen_at=? WHERE workspace='default' AND id='alice'", (now,)
        )
        cur = conn.execute(
            "INSERT INTO messages (workspace, sender, target, body, priority, meta, created_at)"
            " VALUES ('default', 'alice', 'bob', ?, 'normal', '{}', ?)",
            (body, now),
        )
        mid = cur.lastrowid
        conn.execute(
            "INSERT INTO deliveries (workspace, agent_id, message_id) VALUES ('default', 'bob', ?)",
            (mid,),
        )
        conn.execute(
            "INSERT INTO events (workspace, kind, agent_id, data, created_at)"
            " VALUES ('default', 'message.sent', 'alice', ?, ?)",
            (json.dumps({"message_id": mid, "recipients": ["bob"]}), now),
        )
        conn.execute("COMMIT")
    rate = count / (time.perf_counter() - start)
    conn.close()
    return rate


def inbox_latency(folder: Path, stored: int, reads: int) -> dict[str, tuple[float, float, float]]:
    """p50/p99 (ms) at ``stored`` rows, and the p50 of the CPU time the reading thread
    used (ms: on a shared machine, less disturbed by the others than wall time), by
    read: ``peek`` (50 unread, newest first), ``full`` (50 from a cursor, read or
    not), ``page`` (1,000 unread) and ``count`` (the unread count)."""
    with Relay.open(dir=folder) as relay:
        relay.register("alice")
        bob = relay.register("bob")
        relay.register("carol")
    conn = sqlite3.connect(folder / "relay.db", isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    for start in range(0, stored, 10_000):
        n = min(10_000, stored - start)
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0] + 1
        conn.executemany(
            "INSERT INTO messages (workspace, sender, target, body, priority, meta, created_at)"
            " VALUES ('default', 'alice', ?, 'seeded message body', 'normal', '{}', ?)",
            [("bob" if i % 2 else "carol", now) for i in range(n)],
        )
        conn.executemany(
            "INSERT INTO deliveries (workspace, agent_id, message_id, read_at) VALUES"
            " ('default', ?, ?, ?)",
            [
                ("bob" if i % 2 else "carol", first + i, now if i % 4 == 1 else None)
                for i in range(n)
            ],
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    timings: dict[str, list[float]] = {"peek": [], "full": [], "page": [], "count": []}
    cpu: dict[str, list[float]] = {name: [] for name in timings}

    def timed(name: str, read: Callable[[], object]) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        read()
        t1, c1 = time.perf_counter(), time.thread_time()
        timings[name].append((t1 - t0) * 1000)
        cpu[name].append((c1 - c0) * 1000)

    with Relay.open(dir=folder) as relay:
        bob = relay.agent("bob")
        half = stored // 2
        for _ in range(reads):
            timed("peek", lambda: bob.inbox(limit=50))
            timed("full", lambda: bob.inbox(unread_only=False, newest_first=False, since=half))
            timed("page", lambda: bob.inbox(limit=1000))
            timed("count", bob.unread_count)
    return {
        name: (statistics.median(t), percentile(t, 0.99), statistics.median(cpu[name]))
        for name, t in timings.items()
    }


WAITER = r"""
import sys, time, json, resource
from relaybus import Relay
relay = Relay.open(dir=sys.argv[1])
me = relay.agent("bob")
print("ready", flush=True)
cursor = 0
idle = float(sys.argv[3])
# Idle phase: nothing is sent; measure the CPU one blocked waiter uses.
c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
me.wait(idle, since=10**12)
c1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
print(json.dumps({"idle_cpu_percent": 100 * cpu / (t1 - t0)}), flush=True)
for _ in range(int(sys.argv[2])):
    found = me.wait(10.0, since=cursor)
    woke = time.monotonic()
    cursor = max(m.id for m in found)
    sent = max(m.meta["t"] for m in found)
    print(json.dumps({"ms": (woke - sent) * 1000}), flush=True)
"""


def wakeup_latency(folder: Path, wakeups: int, idle: float) -> tuple[float, float, float]:
    """p50/p99 (ms) from just before a send to a waiter in another process
    returning with it, and the idle waiter's CPU use (% of one core)."""
    with Relay.open(dir=folder) as relay:
        alice = relay.register("alice")
        relay.register("bob", pid=None)
        child = subprocess.Popen(
            [sys.executable, "-c", WAITER, str(folder), str(wakeups), str(idle)],
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            idle_cpu = json.loads(child.stdout.readline())["idle_cpu_percent"]
            samples: list[float] = []
            for _ in range(wakeups):
                alice.send("bob", "ping", meta={"t": time.monotonic()})
                samples.append(json.loads(child.stdout.readline())["ms"])
        finally:
            child.wait(timeout=30)
    return statistics.median(samples), percentile(samples, 0.99), idle_cpu


READS = (
    ("peek", "unread, newest 50      "),
    ("full", "all, from a cursor     "),
    ("page", "unread, 1,000          "),
    ("count", "unread count           "),
)


def compare_reads(
    before: Path, root: Path, stored: int, reads: int, rounds: int
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Part 2 for ``before`` and this checkout, alternating, each round a fresh process
    (that checkout's ``.venv`` interpreter) on a fresh store; per checkout and read,
    the median over rounds of its p50, p99 and CPU p50 (ms)."""
    pythons = {"before": str(before / ".venv" / "bin" / "python"), "after": sys.executable}
    found: dict[str, dict[str, list[tuple[float, float, float]]]] = {n: {} for n in pythons}
    for r in range(rounds):
        for name in pythons if r % 2 == 0 else reversed(pythons):
            folder = root / f"reads-{name}-{r}"
            out = subprocess.run(
                [pythons[name], __file__, "--reads-worker", str(folder)]
                + ["--stored", str(stored), "--reads", str(reads)],
                capture_output=True,
                text=True,
                encoding="utf-8",
                check=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")},
            ).stdout
            for read, (p50, p99, cpu) in json.loads(out).items():
                found[name].setdefault(read, []).append((p50, p99, cpu))
    return {
        name: {
            read: (
                statistics.median(p[0] for p in pairs),
                statistics.median(p[1] for p in pairs),
                statistics.median(p[2] for p in pairs),
            )
            for read, pairs in reads_found.items()
        }
        for name, reads_found in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="sends per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--wakeups", type=int, default=300)
    parser.add_argument("--idle", type=float, default=5.0, help="idle-waiter seconds")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--before", type=Path, help="another checkout (with .venv): part 2 only")
    parser.add_argument("--read-rounds", type=int, default=3)
    parser.add_argument("--reads-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reads_worker:
        print(json.dumps(inbox_latency(args.reads_worker, args.stored, args.reads)))
        return
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            both = compare_reads(
                args.before.resolve(), Path(tmp), args.stored, args.reads, args.read_rounds
            )
        print(
            f"2. inbox read at {args.stored} stored messages, {args.reads} reads x "
            f"{args.read_rounds} rounds (medians of the rounds' p50 / p99, and of the "
            "reading thread's CPU p50)"
        )
        for read, text in READS:
            print(
                f"   {text}"
                + "   ".join(
                    f"{name} p50 {both[name][read][0]:6.2f} p99 {both[name][read][1]:6.2f}"
                    f" cpu {both[name][read][2]:6.2f} ms"
                    for name in both
                )
            )
        return
    if args.quick:
        args.messages, args.rounds, args.stored = 200, 1, 5_000
        args.reads, args.wakeups, args.idle = 50, 30, 1.0
    print(
        f"relaybus embedded benchmark — python {sys.version.split()[0]}, "
        f"sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sdk: list[float] = []
        raw: list[float] = []
        for i in range(args.rounds):
            sdk.append(sdk_sends(root / f"sdk{i}", args.messages))
            raw.append(raw_sends(root / f"raw{i}", args.messages))
        ratios = [s / r for s, r in zip(sdk, raw, strict=True)]
        print(f"\n1. sequential send, {args.messages} msgs x {args.rounds} rounds (medians)")
        print(f"   SDK      {statistics.median(sdk):8.0f} msg/s")
        print(f"   raw      {statistics.median(raw):8.0f} msg/s")
        print(f"   ratio    {statistics.median(ratios):8.2f}  (target >= 0.50)")
        reads = inbox_latency(root / "inbox", args.stored, args.reads)
        print(f"\n2. inbox read at {args.stored} stored messages, {args.reads} reads")
        for name, text in READS:
            p50, p99, cpu = reads[name]
            print(f"   {text}p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   cpu p50 {cpu:6.2f} ms")
        w50, w99, cpu = wakeup_latency(root / "wait", args.wakeups, args.idle)
        print(f"\n3. cross-process wait wake-up, {args.wakeups} wake-ups")
        print(f"   p50 {w50:6.2f} ms   p99 {w99:6.2f} ms   (target p50 <= 5, p99 <= 25)")
        print(f"   idle waiter CPU over {args.idle:.0f} s: {cpu:.3f}% of one core")


if __name__ == "__main__":
    main()
