"""Many writers benchmark: 30 processes x 200 sends on one relay, through the warm
relay and with it turned off (``RELAYBUS_DAEMON=0``), in one run.

Run: ``.venv/bin/python bench/writers.py [--rounds 2] [--before /work/main] [--quick]``.

Each round makes a fresh relay folder, registers a ``sink`` agent, and starts
``--writers`` real processes of this interpreter. Each writer opens its relay the way
the CLI and the hooks do (:func:`relaybus.client.warm_backend.open_relay`: through the
warm relay of the folder unless ``RELAYBUS_DAEMON=0``, else the store in the process),
registers itself, reports ready and waits; when every writer is ready they all start at
once and each sends ``--sends`` messages to ``sink`` one after another, timing each
send (call to acknowledgement). The modes alternate round by round (``warm`` first in
even rounds), and a warm round starts its relay before the writers
(``relaybus.client.warm.ensure``) and stops it afterwards.

Checked after each round, on the store itself: every acknowledged message id is stored
exactly once, with the sender and body the writer sent, and delivered to ``sink``;
and no (writer, n) was stored twice. Printed per mode: per-send latency p50 / p99 / max,
sends over 1 s, the total rate (every send / the slowest writer's wall time), and
what was lost or duplicated. With ``--before CHECKOUT`` (a checkout with its own
``.venv``) every round also runs both modes with that checkout's interpreter and code
(setup, warm relay and writers alike), interleaved with this one's. Target (issue 15,
warm relay): p99 <= 50 ms, none over 1 s, nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("warm", "in-process")
TIMEOUT = 600.0


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def writer(relay_dir: Path, name: str, sends: int) -> None:
    """One writer process: open, register ``name``, print ``ready``, wait for a line
    on stdin, send ``sends`` messages to ``sink``; print ``{"ms": [...], "ids": [...],
    "wall": s, "cpu": s}`` as JSON (``cpu``: the process's CPU time over the sends)."""
    from relaybus.client.warm_backend import open_relay
    from relaybus.settings import Settings

    with open_relay(Settings(dir=relay_dir), create=False) as relay:
        me = relay.register(name)
        print("ready", flush=True)
        sys.stdin.readline()
        times: list[float] = []
        ids: list[int] = []
        start = time.perf_counter()
        cpu = time.process_time()
        for n in range(sends):
            t0 = time.perf_counter()
            sent = me.send("sink", f"{name}:{n}")
            times.append((time.perf_counter() - t0) * 1000)
            ids.append(sent.id)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    print(json.dumps({"ms": times, "ids": ids, "wall": wall, "cpu": cpu}), flush=True)


def env_for(mode: str) -> dict[str, str]:
    """The writers' environment: no ``RELAYBUS_*`` of the user's; ``RELAYBUS_DAEMON=0``
    for ``in-process``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    if mode == "in-process":
        env["RELAYBUS_DAEMON"] = "0"
    return env


def setup(relay_dir: Path, mode: str) -> None:
    """Create the relay with ``sink`` registered; start its warm relay in ``warm`` mode."""
    from relaybus import Relay
    from relaybus.client import warm

    with Relay.open(dir=relay_dir) as relay:
        relay.register("sink")
    if mode == "warm":
        warm.ensure(relay_dir, env=env_for(mode))


def teardown(relay_dir: Path) -> None:
    """Stop the warm relay of ``relay_dir`` if one runs."""
    from relaybus.client import warm

    warm.stop(relay_dir)


def one_round(folder: Path, mode: str, writers: int, sends: int, python: str) -> dict[str, object]:
    """Run one round in ``folder`` with interpreter ``python``; returns the samples and
    the checks' findings."""
    relay_dir = folder / ".relay"
    helper = [python, __file__]
    subprocess.run([*helper, "--setup", str(relay_dir), mode], check=True, env=env_for(mode))
    relay_cpu = None
    if mode == "warm":
        import psutil

        from relaybus.client import warm

        info = warm.probe(relay_dir)
        assert info is not None and info.pid is not None
        relay_process = psutil.Process(info.pid)
    procs = []
    try:
        for i in range(writers):
            procs.append(
                subprocess.Popen(
                    [*helper, "--writer", str(relay_dir), f"w{i:02d}"] + ["--sends", str(sends)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                    env=env_for(mode),
                )
            )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a writer did not start: {line!r}")
        if mode == "warm":
            before = relay_process.cpu_times()
        for p in procs:  # all at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=TIMEOUT)
            if p.returncode != 0:
                raise RuntimeError(f"writer {i} failed ({p.returncode})")
            results.append(json.loads(out))
        if mode == "warm":
            after = relay_process.cpu_times()
            relay_cpu = after.user + after.system - before.user - before.system
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if mode == "warm":
            subprocess.run([*helper, "--teardown", str(relay_dir)], check=True)
    return {
        "results": results,
        "checks": check(relay_dir / "relay.db", results, sends),
        "relay_cpu": relay_cpu,
    }


def check(db: Path, results: list[dict[str, object]], sends: int) -> dict[str, int]:
    """What the store says of the acknowledged sends: ``acked``, ``lost`` (an
    acknowledged id not stored, or stored with another sender or body, or not delivered
    to ``sink``), ``duplicate_ids`` (one id acknowledged twice) and ``duplicates``
    (a writer's message stored more than once)."""
    conn = sqlite3.connect(db)
    stored = {
        mid: (sender, body, agent)
        for mid, sender, body, agent in conn.execute(
            "SELECT m.id, m.sender, m.body, d.agent_id FROM messages AS m"
            " LEFT JOIN deliveries AS d ON d.message_id = m.id AND d.agent_id = 'sink'"
            " WHERE m.sender != 'sink'"
        )
    }
    bodies = conn.execute(
        "SELECT COUNT(*) FROM (SELECT body FROM messages GROUP BY sender, body HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    conn.close()
    acked = lost = 0
    seen: set[int] = set()
    duplicate_ids = 0
    for i, result in enumerate(results):
        name = f"w{i:02d}"
        ids = result["ids"]
        assert isinstance(ids, list)
        for n, mid in enumerate(ids):
            acked += 1
            if mid in seen:
                duplicate_ids += 1
            seen.add(mid)
            if stored.get(mid) != (name, f"{name}:{n}", "sink"):
                lost += 1
    return {
        "acked": acked,
        "expected": len(results) * sends,
        "stored": len(stored),
        "lost": lost,
        "duplicate_ids": duplicate_ids,
        "duplicates": int(bodies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=30)
    parser.add_argument("--sends", type=int, default=200, help="sends per writer")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each mode")
    parser.add_argument("--quick", action="store_true", help="5 writers x 20 sends, 1 round")
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    parser.add_argument("--writer", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--teardown", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(Path(args.writer[0]), args.writer[1], args.sends)
        return
    if args.setup:
        setup(Path(args.setup[0]), args.setup[1])
        return
    if args.teardown:
        teardown(args.teardown)
        return
    if args.quick:
        args.writers, args.sends, args.rounds = 5, 20, 1
    print(
        f"{args.writers} writer processes x {args.sends} sends to one agent, "
        f"{args.rounds} round(s) of each mode, interleaved; load average {os.getloadavg()[0]:.1f}"
    )
    pythons = {"after": sys.executable}
    if args.before:
        pythons = {"before": str(args.before.resolve() / ".venv" / "bin" / "python"), **pythons}
    runs = [(who, mode) for who in pythons for mode in MODES]
    samples: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    rates: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    checks: dict[tuple[str, str], dict[str, int]] = {run: {} for run in runs}
    #: CPU ms per send: the writers' (client side), the warm relay's.
    cpu: dict[tuple[str, str], dict[str, list[float]]] = {
        run: {"writers": [], "relay": []} for run in runs
    }
    root = Path(tempfile.mkdtemp(prefix="relaybus-writers-"))
    try:
        for r in range(args.rounds):
            for who, mode in runs if r % 2 == 0 else reversed(runs):
                run = (who, mode)
                folder = root / f"{who}-{mode}-{r}"
                found = one_round(folder, mode, args.writers, args.sends, pythons[who])
                results = found["results"]
                assert isinstance(results, list)
                for result in results:
                    samples[run].extend(result["ms"])
                slowest = max(result["wall"] for result in results)
                count = args.writers * args.sends
                cpu[run]["writers"].append(sum(x["cpu"] for x in results) * 1000 / count)
                if isinstance(found["relay_cpu"], float):
                    cpu[run]["relay"].append(found["relay_cpu"] * 1000 / count)
                rates[run].append(args.writers * args.sends / slowest)
                found_checks = found["checks"]
                assert isinstance(found_checks, dict)
                for key, value in found_checks.items():
                    checks[run][key] = checks[run].get(key, 0) + int(value)
                shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for run in runs:
        ms = samples[run]
        c = checks[run]
        name = " ".join(run)
        print(
            f"  {name:<18} p50 {percentile(ms, 0.5):7.2f}  p99 {percentile(ms, 0.99):7.2f}"
            f"  max {max(ms):8.2f} ms  over 1 s: {sum(1 for x in ms if x > 1000)}"
            f"  rate {statistics.median(rates[run]):6.0f} sends/s  ({len(ms)} sends)"
        )
        print(
            f"  {'':<18} acknowledged {c['acked']}/{c['expected']}, stored {c['stored']},"
            f" lost {c['lost']}, ids acknowledged twice {c['duplicate_ids']},"
            f" stored twice {c['duplicates']}"
        )
        used = cpu[run]
        print(
            f"  {'':<18} CPU per send: writers {statistics.median(used['writers']):.2f} ms"
            + (f", relay {statistics.median(used['relay']):.2f} ms" if used["relay"] else "")
        )


if __name__ == "__main__":
    main()
