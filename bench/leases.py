"""What keeping an agent's leases costs: ``renew_held`` per call, and a runtime's
:class:`~relaybus.client.leases.LeaseKeeper` while it holds nothing and while it holds
a short lease.

Usage::

    .venv/bin/python bench/leases.py [--rounds 5] [--seconds 5] [--writes 20]

Prints, on an embedded SQLite relay in a temporary folder:

- ``renew_held`` wall time per call, p50 (µs), with 0, 1 and 10 leases held (0: one
  read; otherwise one write transaction);
- this process's CPU (ms per second of wall time) over ``--seconds`` with the relay
  written to ``--writes`` times a second by another agent (messages that wake every
  waiter; 0: a quiet relay), without a keeper and with an idle keeper (nothing held), in interleaved
  rounds; the keeper's renewals in that time (a safety-net renewal only: 0 or 1);
- the same with a keeper holding one 2 s lease: renewals per second (target: 1.5,
  one per third of the lease) and the CPU they cost.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from relaybus import Relay
from relaybus.client.leases import LeaseKeeper


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def writer(relay: Relay, per_second: float, stop: threading.Event) -> threading.Thread:
    """bob sends carol a message ``per_second`` times a second until ``stop`` (0: none)."""
    bob = relay.agent("bob")

    def run() -> None:
        while per_second > 0 and not stop.wait(1 / per_second):
            bob.send("carol", "tick")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def renew_held_us(relay: Relay, held: int, calls: int = 300) -> float:
    """p50 µs of ``renew_held`` by an agent holding ``held`` leases."""
    name = f"holder{held}"
    handle = relay.register(name, capabilities=[name])
    for _ in range(held):
        task_id = relay.agent("bob").send(f"cap:{name}", "job", claimable=True).task_id
        assert task_id is not None
        handle.claim(task_id, lease=3600.0)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        handle.renew_held()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def measure(
    relay: Relay, seconds: float, writes: float, keeper: Callable[[], LeaseKeeper | None]
) -> tuple[float, int]:
    """(CPU ms per wall second, renewals) over ``seconds`` with the writer running."""
    stop = threading.Event()
    thread = writer(relay, writes, stop)
    running = keeper()
    if running is not None:
        running.start()
    before, started = cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    used, wall = cpu_seconds() - before, time.monotonic() - started
    stop.set()
    renewals = 0
    if running is not None:
        running.stop(timeout=15.0)
        renewals = running.renewals
    thread.join()
    return used * 1000 / wall, renewals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writes", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Relay.open(dir=Path(folder)) as relay:
        relay.register("bob")
        relay.register("carol")
        idle_agent = relay.register("idle")
        busy_agent = relay.register("busy", capabilities=["short"])
        for held in (0, 1, 10):
            print(f"renew_held, {held:2d} held: p50 {renew_held_us(relay, held):7.0f} µs")

        def short_keeper() -> LeaseKeeper:
            task_id = relay.agent("bob").send("cap:short", "job", claimable=True).task_id
            assert task_id is not None
            busy_agent.claim(task_id, lease=2.0)
            return LeaseKeeper(busy_agent)

        figures: dict[str, list[tuple[float, int]]] = {"none": [], "idle": [], "2s": []}
        for _ in range(args.rounds):  # interleaved: the machine's load hits each alike
            figures["none"].append(measure(relay, args.seconds, args.writes, lambda: None))
            figures["idle"].append(
                measure(relay, args.seconds, args.writes, lambda: LeaseKeeper(idle_agent))
            )
            figures["2s"].append(measure(relay, args.seconds, args.writes, short_keeper))
        for name, rounds in figures.items():
            cpu = statistics.median(r[0] for r in rounds)
            renewals = statistics.median(r[1] for r in rounds)
            print(
                f"keeper {name:4s}: CPU {cpu:6.1f} ms/s (median of {args.rounds}), "
                f"renewals {renewals / args.seconds:4.2f}/s"
            )


if __name__ == "__main__":
    main()
