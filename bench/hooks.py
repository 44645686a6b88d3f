"""Claude Code hook commands: wall time per call, and the size of ``tools/list``.

Starts a real ``relaybus mcp`` (stdio, through the MCP SDK's client) on a fresh
relay, as Claude Code would, then runs each hook command as Claude Code does:
the installed ``relaybus`` console script as a new process, the recorded hook
input on stdin. Wall time covers the whole process: interpreter start, imports,
the call to the session's ``relaybus mcp``, the relay's work, exit.

Usage::

    .venv/bin/python bench/hooks.py [--runs 40] [--bare-runs 20] [--inline-runs 5] [--gate-runs 40]

Prints, per hook event: p50 and p99 wall time in ms

- with the session's ``relaybus mcp`` serving the hooks (target: p50 <= 100 ms);
- with no ``relaybus mcp`` answering, as at the start of a session while it
  is still starting (target: p99 < 1,000 ms, as for every hook). The hook then
  reads the unread mail itself (a quarter of the calls find a message), prints
  it, and hands presence and the printed ids to a background process; the
  bench waits for that process's events before the next call, so that the
  calls do not pile up;
- for reference, ``--inline`` (the command opens the relay itself).

Also ``python -c pass``, the floor any Python command pays, and the
``tools/list`` result in characters (target < 10,000).

And the approval gate, ``relaybus hook pre-tool-use``, which Claude Code runs before
every tool call (no ``relaybus mcp`` involved), in interleaved rounds: for ``Read``
(never gated: no identity, no relay read), and for ``Write`` by an agent stored as
read-only, its mode read from the SQLite file (``RELAYBUS_DAEMON=0``) and through the
warm local relay (target: p99 well under the 1,000 ms of every hook); with, for
comparison, ``python -c pass`` and ``Read`` through :mod:`relaybus.tools.hooks.command`
(the route the other hooks take). ``--gate-only`` measures only those.
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
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from relaybus import Relay
from relaybus.identity import session_socket

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "tools" / "payloads"
EVENTS = ["session-start", "user-prompt-submit", "post-tool-use", "stop", "session-end"]


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def timed(argv: list[str], stdin: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``argv`` to completion; (wall seconds, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, encoding="utf-8", env=env, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed, proc.stdout


def load(name: str, cwd: Path) -> str:
    doc: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    doc["cwd"] = str(cwd)
    return json.dumps(doc)


def run_hooks(
    exe: str, env: dict[str, str], project: Path, runs: int, *, inline: bool, relay: Relay
) -> dict[str, list[float]]:
    """Wall times per hook command (ms), the session's process serving them
    (or ``inline``)."""
    bob = relay.register("bench-bob", pid=None)
    times: dict[str, list[float]] = {}
    extra = ["--inline"] if inline else []
    for event in EVENTS:
        doc = load(event, project)
        samples = []
        for n in range(runs):
            if event == "post-tool-use" and n % 4 == 0:
                # a quarter of the calls find mail (the rest, the common case, none)
                bob.send(env["BENCH_AGENT"], f"note {n}")
            seconds, _ = timed([exe, "hook", event, *extra], doc, env)
            samples.append(seconds * 1000)
        times[event] = samples
    return times


def run_bare(exe: str, env: dict[str, str], project: Path, runs: int, relay: Relay) -> Any:
    """Wall times per hook command (ms) with no ``relaybus mcp`` answering; a
    quarter of the calls of each hook that shows mail find a message, which the
    hook reads and prints itself."""
    agent = env["BENCH_AGENT"]
    bob = relay.register("bench-bob", pid=None)
    times: dict[str, list[float]] = {}
    for event in EVENTS:
        doc = load(event, project)
        samples = []
        for n in range(runs):
            mail = event != "session-end" and n % 4 == 0
            if mail:
                bob.send(agent, f"note {n}")
            since = relay.last_event_id()
            seconds, out = timed([exe, "hook", event], doc, env)
            samples.append(seconds * 1000)
            if mail and f"note {n}" not in out:
                raise SystemExit(f"{event} did not print the waiting message")
            # the background process: presence (not after post-tool-use), and
            # marking the printed mail read; awaited, so calls do not pile up
            expect = {"message.read"} if mail else set()
            presence = event != "post-tool-use" and not (event == "stop" and mail)
            for _ in range(20):  # bounded: each wait returns on an event or after 30 s
                if not expect and not presence:
                    break
                found = relay.wait_events(30.0, since=since)
                if not found:
                    raise SystemExit(f"no background work seen after {event}")
                since = found[-1].id
                mine = [e for e in found if e.agent_id == agent]
                expect -= {e.kind for e in mine}
                presence = presence and not any(e.kind != "message.read" for e in mine)
        times[event] = samples
    return times


def run_gate(
    exe: str, env: dict[str, str], project: Path, runs: int, relay: Relay
) -> dict[str, list[float]]:
    """Wall times (ms) of ``relaybus hook pre-tool-use`` per case, in interleaved
    rounds; checks each answer (nothing for Read, deny for the read-only Write)."""
    from relaybus.client import warm

    me = relay.agent(env["BENCH_AGENT"])
    me.update(approval="read-only")
    folder = Path(env["RELAYBUS_DIR"])
    warm.ensure(folder, env=env)
    doc = json.loads(load("pre-tool-use", project))
    read = json.dumps({**doc, "tool_name": "Read", "tool_input": {"file_path": "/x"}})
    write = json.dumps(doc)
    hook = [exe, "hook", "pre-tool-use"]
    # The route every other hook takes (hooks.command first), for comparison.
    command = (
        "import sys; from relaybus.tools.hooks.command import main; sys.exit(main(sys.argv[1:]))"
    )
    through_command = [sys.executable, "-c", command, "pre-tool-use"]
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], "", env, False),
        "Read (any mode)": (hook, read, env, False),
        "Read, via command": (through_command, read, env, False),
        "Write, SQLite": (hook, write, {**env, "RELAYBUS_DAEMON": "0"}, True),
        "Write, warm relay": (hook, write, env, True),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(runs):
            for name, (argv, stdin, case_env, denied) in cases.items():
                seconds, out = timed(argv, stdin, case_env)
                times[name].append(seconds * 1000)
                if denied != ('"permissionDecision": "deny"' in out):
                    raise SystemExit(f"pre-tool-use {name}: unexpected output {out!r}")
    finally:
        me.update(approval="open")
        warm.stop(folder)
    return times


async def gate_only(exe: str, env: dict[str, str], project: Path, args: argparse.Namespace) -> None:
    """``--gate-only``: the session's agent registered as its hooks register it (no
    ``relaybus mcp``), then :func:`run_gate` and the floor."""
    from relaybus.identity import session_identity
    from relaybus.tools.session import session_agent

    with Relay.open(dir=Path(env["RELAYBUS_DIR"])) as relay:
        identity = session_identity("claude", cwd=str(project), env=env)
        env["BENCH_AGENT"] = session_agent(relay, identity, register=True).id
        gate = await anyio.to_thread.run_sync(
            lambda: run_gate(exe, env, project, args.gate_runs, relay)
        )
    print(f"{'pre-tool-use (ms)':20} {'p50':>9} {'p99':>8}")
    for name, samples in gate.items():
        print(row(name, samples))
    print(f"{args.gate_runs} interleaved rounds")


def row(name: str, *columns: list[float]) -> str:
    cells = "".join(
        f" {statistics.median(c):9.1f} {percentile(c, 0.99):8.1f}" if c else f" {'-':>9} {'-':>8}"
        for c in columns
    )
    return f"{name:20}{cells}"


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="rb-bench-", dir="/tmp"))
    try:
        project = work / "shop"
        project.mkdir()
        exe = str(Path(sys.executable).parent / "relaybus")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYBUS_", "CLAUDE"))}
        env.update(
            RELAYBUS_DIR=str(work / "relay"),
            RELAYBUS_SESSION="bench-session",
            RELAYBUS_TOOL="claude",
            XDG_RUNTIME_DIR=str(work),
            XDG_STATE_HOME=str(work / "state"),
        )
        floor = [timed([sys.executable, "-c", "pass"], "", env)[0] * 1000 for _ in range(10)]
        if args.gate_only:
            await gate_only(exe, env, project, args)
            return
        params = StdioServerParameters(command=exe, args=["mcp"], env=env, cwd=str(project))
        with Relay.open(dir=work / "relay") as relay:
            async with Client(params) as client:
                tools = await client.list_tools()
                size = len(
                    json.dumps(tools.model_dump(mode="json", by_alias=True, exclude_none=True))
                )
                await client.call_tool("whoami", {})  # registers the session's agent
                agent = next(a.id for a in relay.agents() if a.id != "bench-bob")
                env["BENCH_AGENT"] = agent
                socket_path = session_socket("bench-session", env)
                for _ in range(100):  # the server binds its hook socket just after start
                    if socket_path.exists():
                        break
                    await anyio.sleep(0.05)
                else:
                    raise SystemExit(f"relaybus mcp never served {socket_path}")
                served = await anyio.to_thread.run_sync(
                    lambda: run_hooks(exe, env, project, args.runs, inline=False, relay=relay)
                )
            # relaybus mcp has exited: every hook answers without it
            bare = await anyio.to_thread.run_sync(
                lambda: run_bare(exe, env, project, args.bare_runs, relay)
            )
            inline: dict[str, list[float]] = {}
            if args.inline_runs:
                inline = await anyio.to_thread.run_sync(
                    lambda: run_hooks(exe, env, project, args.inline_runs, inline=True, relay=relay)
                )
            gate: dict[str, list[float]] = {}
            if args.gate_runs:
                gate = await anyio.to_thread.run_sync(
                    lambda: run_gate(exe, env, project, args.gate_runs, relay)
                )
        print(f"python -c pass: p50 {statistics.median(floor):.1f} ms (the floor)")
        print(f"tools/list result: {size} characters (target < 10,000)")
        print(
            f"\n{'hook (ms)':20} {'served p50':>9} {'p99':>8} {'no mcp p50':>9} {'p99':>8}"
            f" {'inline p50':>9} {'p99':>8}"
        )
        for event in EVENTS:
            print(row(event, served[event], bare[event], inline.get(event, [])))
        print(
            f"\n{args.runs} served, {args.bare_runs} no-mcp and {args.inline_runs} inline runs per"
            " hook; targets: served p50 <= 100 ms, every hook p99 < 1,000 ms"
        )
        if gate:
            print(f"\n{'pre-tool-use (ms)':20} {'p50':>9} {'p99':>8}")
            for name, samples in gate.items():
                print(row(name, samples))
            print(f"{args.gate_runs} interleaved rounds")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="calls per hook, served (40)")
    parser.add_argument(
        "--bare-runs", type=int, default=20, help="calls per hook, no relaybus mcp (20)"
    )
    parser.add_argument("--inline-runs", type=int, default=5, help="calls per hook, inline (5)")
    parser.add_argument(
        "--gate-runs", type=int, default=40, help="rounds of the pre-tool-use cases (40)"
    )
    parser.add_argument(
        "--gate-only", action="store_true", help="only the pre-tool-use cases (no relaybus mcp)"
    )
    anyio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()
