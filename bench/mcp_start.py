"""``relaybus mcp`` start-up: process start to ``tools/list`` answered.

Run: ``.venv/bin/python bench/mcp_start.py`` (``--rounds N``; ``--quick`` for a smoke run).

In a fresh git repository in a temporary folder, each round starts, as new processes
the way a coding tool does (the venv's ``relaybus`` console script), in this order:

- ``python -c pass`` with the same interpreter: the floor any Python command pays;
- ``relaybus mcp`` **warm**: the bridge, with the warm relay already running;
- ``relaybus mcp`` **cold**: the bridge with no relay running (it starts one; the
  relay is stopped again after the run, outside the timing);
- ``relaybus mcp`` with ``RELAYBUS_DAEMON=0``: the MCP server in-process (the path
  before the bridge).

Each ``relaybus mcp`` run writes ``initialize``, waits for its answer, writes
``notifications/initialized`` and ``tools/list``, and is timed from ``Popen`` to the
``tools/list`` answer read; then its stdin is closed and it exits, timed apart (the
``exit ms`` column: a client that closes a cold bridge at once waits that long). Its
CPU (user + system, from ``os.wait4``) covers its whole life, the relay's not.
Rounds are interleaved, so a noisy machine slows every command alike; the first
round, a warm-up, is not counted. The children write and use bytecode.

Prints per command the medians of wall, CPU and exit time in ms, and the wall median's
ratio to ``python -c pass``'s (the issue's target for the warm bridge: at most 15x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from relaybus.client import warm

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
#: Seconds one run may take before the benchmark gives up.
HUNG = 60.0


def line(message: Mapping[str, object]) -> bytes:
    return json.dumps(message).encode("utf-8") + b"\n"


def time_mcp(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Start ``argv`` (a ``relaybus mcp``), list its tools, close it: ``(seconds to the
    tools/list answer, CPU seconds of the child, seconds from closing its stdin to its
    exit)``.

    Raises:
        SystemExit: it did not answer as a server should.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(line(INITIALIZE))
    proc.stdin.flush()
    if b'"serverInfo"' not in proc.stdout.readline():
        proc.kill()
        raise SystemExit(f"{argv}: no answer to initialize: {proc.stderr.read()!r}")
    proc.stdin.write(line(INITIALIZED) + line(TOOLS_LIST))
    proc.stdin.flush()
    answer = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    if b'"tools"' not in answer:
        proc.kill()
        raise SystemExit(f"{argv}: no answer to tools/list: {answer!r}")
    closed = time.perf_counter()
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    exited = time.perf_counter() - closed
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{argv}: exit {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, exited


def time_pass(python: str, env: dict[str, str]) -> tuple[float, float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-c", "pass"], env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="counted rounds (default 15)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds

    python = sys.executable
    script = str(Path(python).parent / "relaybus")
    base = Path(tempfile.mkdtemp(prefix="rb-mcp-bench-"))
    project = base / "project"
    (project / ".git").mkdir(parents=True)
    relay_dir = project / ".relay"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HOME=str(base / "home"),
        XDG_CONFIG_HOME=str(base / "home" / ".config"),
        XDG_RUNTIME_DIR=str(base / "run"),
        RELAYBUS_SESSION="bench",
        RELAYBUS_AGENT="bench",
    )
    (base / "run").mkdir(mode=0o700)

    def cold() -> tuple[float, float, float]:
        warm.stop(relay_dir)
        return time_mcp([script, "mcp"], env, project)

    commands: dict[str, Callable[[], tuple[float, float, float]]] = {
        "python -c pass": lambda: time_pass(python, env),
        "relaybus mcp, warm relay": lambda: time_mcp([script, "mcp"], env, project),
        "relaybus mcp, cold (starts the relay)": cold,
        "relaybus mcp, RELAYBUS_DAEMON=0": lambda: time_mcp(
            [script, "mcp"], {**env, "RELAYBUS_DAEMON": "0"}, project
        ),
    }

    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    exits: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for counted in [False] + [True] * rounds:
            for name, command in commands.items():
                if name.startswith("relaybus mcp, warm"):
                    warm.ensure(relay_dir)
                wall, cpu, exited = command()
                if counted:
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    exits[name].append(exited)
    finally:
        warm.stop(relay_dir)
        shutil.rmtree(base, ignore_errors=True)

    floor = statistics.median(walls["python -c pass"])
    print(f"{rounds} interleaved rounds (medians), {python}")
    print(f"{'command':42} {'wall ms':>9} {'cpu ms':>9} {'x pass':>8} {'exit ms':>9}")
    for name in commands:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        exited = statistics.median(exits[name])
        print(
            f"{name:42} {wall * 1000:9.1f} {cpu * 1000:9.1f} {wall / floor:8.1f}"
            f" {exited * 1000:9.1f}"
        )


if __name__ == "__main__":
    main()
