"""Helpers shared by the benchmarks: percentiles, the two-agent workload's figures,
process statistics read from ``/proc``.

The two-agent workload (run on relaybus and on the peer, ``bench/peers/``):
agent A sends 64-byte messages to agent B, both connected to the relay.
- sequential: A sends one, waits until B has received it, sends the next;
  the figures are send-to-receive latency p50/p99 (ms) and messages/s;
- pipelined: A sends N without waiting; B receives them all; messages/s from
  the first send to the last receipt.
"""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank (no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class TwoAgentRound:
    """One round of the two-agent workload.

    Attributes:
        sequential_ms: send-to-receive latency of each sequential message (ms).
        sequential_s: wall time of the sequential part (seconds).
        pipelined: messages sent (and received) in the pipelined part.
        pipelined_s: first send to last receipt (seconds).
    """

    sequential_ms: list[float]
    sequential_s: float
    pipelined: int
    pipelined_s: float

    @property
    def sequential_rate(self) -> float:
        """Sequential messages per second."""
        return len(self.sequential_ms) / self.sequential_s

    @property
    def pipelined_rate(self) -> float:
        """Pipelined messages per second."""
        return self.pipelined / self.pipelined_s


@dataclass(frozen=True)
class TwoAgentSummary:
    """Figures over rounds: latency percentiles over all samples, medians of the rates."""

    sequential_rate: float
    p50_ms: float
    p99_ms: float
    pipelined_rate: float

    @classmethod
    def of(cls, rounds: Sequence[TwoAgentRound]) -> TwoAgentSummary:
        """Summarize one or more rounds (raises ``ValueError`` on none)."""
        if not rounds:
            raise ValueError("no rounds to summarize")
        samples = [ms for r in rounds for ms in r.sequential_ms]
        return cls(
            sequential_rate=statistics.median(r.sequential_rate for r in rounds),
            p50_ms=percentile(samples, 0.50),
            p99_ms=percentile(samples, 0.99),
            pipelined_rate=statistics.median(r.pipelined_rate for r in rounds),
        )


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_mib(pid: int) -> float:
    """Resident set size (``VmRSS``) of process ``pid``, MiB.

    Raises:
        OSError: the process does not exist (or ``/proc`` is not mounted).
    """
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (seconds) process ``pid`` has used so far.

    Raises:
        OSError: the process does not exist.
    """
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        # Fields after the command name (which may contain spaces) start at ") ".
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_pressure() -> float | None:
    """The share of the last 60 s (percent) in which some runnable task waited for a CPU
    (``/proc/pressure/cpu``, "some avg60"): how contended the machine is; ``None`` where the
    kernel does not report it."""
    try:
        with open("/proc/pressure/cpu", encoding="utf-8") as pressure:
            first = pressure.readline().split()
    except OSError:
        return None
    for field in first[1:]:
        name, _, value = field.partition("=")
        if name == "avg60":
            return float(value)
    return None
