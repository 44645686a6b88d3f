"""Where a relay server's CPU goes per REST send: each thread's CPU per request.

Run: ``.venv/bin/python bench/server_threads.py [--before CHECKOUT] [--rounds N]``.

Starts ``relaybus serve`` of each checkout (its own ``.venv``) on a fresh relay,
registers ``alice`` and ``bob``, and runs ``wrk`` (Debian's package: ``apt install
wrk``; 2 threads, 8 keep-alive connections) posting ``alice``'s message to ``bob``
for ``--seconds``, the checkouts taking turns round by round. Each thread's CPU is
read from ``/proc/PID/task/*/stat`` before and after. Printed per round: the rate
and the CPU per request in ms of the main thread (the event loop), of the busiest
other thread (the send groups' thread, which commits) and of all other threads
together (``/proc`` names them all ``python``), then the medians.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rest import SEND, WRK_SCRIPT, relay_server

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, by ``name-tid``."""
    found: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="ascii") as f:
            name = f.read().strip()
        name = "main" if int(tid) == pid else name  # the event loop's thread
        found[f"{name}-{tid}"] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def one_round(checkout: Path, root: Path, script: Path, seconds: float) -> dict[str, float]:
    """One server of ``checkout`` under wrk: ``rate`` and ms of CPU per request by thread."""
    with relay_server(checkout, root) as server:
        conn = http.client.HTTPConnection(server.url.split("//", 1)[1].rstrip("/"))
        for agent in ("alice", "bob"):
            body = json.dumps({"id": agent})
            conn.request("POST", "/v1/agents", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            if reply.status != 201:
                raise RuntimeError(f"register {agent}: {reply.status}")
        conn.close()
        wrk = ["wrk", "-t2", "-c8", "-s", str(script)]
        url = server.url.rstrip("/") + "/v1/messages"
        subprocess.run([*wrk, "-d1s", url], capture_output=True, check=True)  # warm-up
        before = thread_cpu(server.pid)
        out = subprocess.run(
            [*wrk, f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
        ).stdout
        after = thread_cpu(server.pid)
    rate = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[1])
    requests = rate * seconds
    spent = {name: (cpu - before.get(name, 0.0)) * 1000 / requests for name, cpu in after.items()}
    others = sorted((ms for name, ms in spent.items() if not name.startswith("main-")))[::-1]
    return {
        "rate": rate,
        "main": sum(ms for name, ms in spent.items() if name.startswith("main-")),
        "busiest other": others[0] if others else 0.0,
        "all others": sum(others),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/server_threads.py: wrk is not installed (Debian: apt install wrk)")
    checkouts = {"after": Path(__file__).resolve().parents[1]}
    if args.before:
        checkouts = {"before": args.before.resolve(), **checkouts}
    found: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="relaybus-threads-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=SEND.decode()), encoding="utf-8")
        for n in range(args.rounds):
            for name, checkout in checkouts.items():
                got = one_round(checkout, Path(tmp) / f"{name}-{n}", script, args.seconds)
                found[name].append(got)
                rest = ", ".join(f"{k} {v:.3f}" for k, v in got.items() if k != "rate")
                print(f"round {n + 1} {name}: {got['rate']:.0f} req/s; ms/req: {rest}", flush=True)
    print(f"\nmedians of {args.rounds} rounds")
    for name, rounds in found.items():
        keys = list(rounds[0])
        medians = {k: statistics.median(r.get(k, 0.0) for r in rounds) for k in keys}
        rest = ", ".join(f"{k} {v:.3f}" for k, v in medians.items() if k != "rate")
        print(f"{name}: {medians['rate']:.0f} req/s; ms/req: {rest}")


if __name__ == "__main__":
    main()
