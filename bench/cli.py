"""CLI start-up: wall and CPU time of whole ``relaybus`` processes on the embedded store.

Run: ``.venv/bin/python bench/cli.py`` (``--quick`` for a smoke run).

Sets up a fresh git repository in a temporary folder, runs ``relaybus init`` and
registers two agents there, then times each command below as a new process, the
way a person or a coding tool starts it (the venv's ``relaybus`` console script):

- ``python -c pass`` with the same interpreter: the floor any Python command pays;
- the stack's imports (:data:`STACK`): the floor an in-process command pays;
- ``relaybus --help``;
- ``relaybus agents``;
- ``relaybus --as alice send --to bob BODY``;
- ``relaybus --as bob inbox --peek``;
- ``relaybus hook post-tool-use`` with no ``relaybus mcp`` answering (the hook reads
  the session agent's unread mail itself, with the standard library);
- ``relaybus hook post-tool-use --inline`` (the hook opens the relay in-process).

Every command opens the store in-process (``RELAYBUS_DAEMON=0``). ``--warm`` also runs
each ``relaybus`` command with the warm local relay running (started once before the
rounds with ``relaybus daemon start``, stopped after them): the command talks to it over
its Unix socket, and a hook reads the mail through it.

``--peer`` also times the peer, agent-relay 1.6.0 (``bench/peers/``: installed from npm into
a cache on first use, skipped with a message without ``node``/``npm`` or if the install
fails): its daemon is started on fresh data, two agents alice and bob connect through the
package's own client library, alice sends bob 10 messages, and the agents stay connected
through the rounds; then ``agent-relay agents`` and ``agent-relay history`` are timed as
whole ``node <package>/dist/cli/index.js ...`` processes (what its ``agent-relay`` shim
runs), from the daemon's project folder with its environment, with ``node -e 0`` as Node's
floor, in the same rounds. The daemon is stopped by its pid after them.

Rounds are interleaved (each round runs every command once, in order), so a noisy
machine slows all of them alike. ``--compare SRC`` also runs every ``relaybus`` command
with ``PYTHONPATH=SRC`` (the ``src`` folder of another checkout, e.g. the code before a
change), in the same rounds. ``--before VENV`` does the same with another installation's
own virtual environment (e.g. ``/work/main/.venv``: its ``relaybus`` console script and
its ``python -c pass``), on a relay of its own (set up, and with ``--warm`` its warm relay
started and stopped, by that installation). The children write and use bytecode
(``PYTHONDONTWRITEBYTECODE`` is dropped), as an installed package does; the first round,
a warm-up, is not counted.

Prints per command the medians of wall time and of CPU time (user + system of the
child, from ``os.wait4``), both in ms, and the ratio of each median to ``python -c pass``'s
(``(before)`` commands: to that of the other virtual environment's python). With
``--peer`` it then prints, for ``relaybus agents``, ``send`` and ``inbox --peek`` (and
their ``(warm)`` runs), the ratio of their wall and CPU medians to those of the peer's
``agents`` and ``history``. The header gives the 1-minute load average before and after
the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import agent_relay  # noqa: E402

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "tools" / "payloads"

#: What an in-process command costs before any of relaybus: the interpreter importing
#: the stack it runs on (click, SQLAlchemy with its SQLite dialect, pydantic building one
#: model), with the garbage collector paused and no teardown at exit, as ``relaybus
#: agents`` does. Plain imports: the hot commands defer two packages this runs
#: (``asyncio``, ``importlib.metadata``: :mod:`relaybus.cli.deferred`).
STACK = """
import gc, os
gc.disable()
import click, sqlalchemy, sqlalchemy.dialects.sqlite, pydantic
class Row(pydantic.BaseModel):
    tags: list[str] = pydantic.Field(default_factory=list)
gc.freeze()
os._exit(0)
"""
STACK_NAME = "stack imports (no relaybus)"


@dataclass
class Samples:
    """Wall and CPU seconds of each run of one command."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def run(argv: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> tuple[float, float]:
    """Run ``argv`` to completion in ``cwd``; ``(wall seconds, CPU seconds)`` of the child.

    Raises:
        SystemExit: the command failed (its stderr in the message).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # communicate() would reap the child and lose its rusage: write, read, then wait4.
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(stdin.encode("utf-8"))
    proc.stdin.close()
    proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {err.decode('utf-8').strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def setup(work: Path, exe: str, env: dict[str, str]) -> Path:
    """A git repository under ``work`` with an initialized relay and agents alice, bob."""
    project = work / "shop"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    for argv in (["init"], ["register", "alice"], ["register", "bob"]):
        subprocess.run(
            [exe, *argv], cwd=project, env=env, check=True, capture_output=True, encoding="utf-8"
        )
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command (15)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke run")
    parser.add_argument(
        "--compare", metavar="SRC", type=Path, help="also time the relaybus package in SRC"
    )
    parser.add_argument(
        "--before",
        metavar="VENV",
        type=Path,
        help="also time the relaybus installed in the virtual environment VENV",
    )
    parser.add_argument(
        "--warm", action="store_true", help="also time each command through the warm relay"
    )
    parser.add_argument(
        "--peer", action="store_true", help="also time agent-relay 1.6.0's agents and history"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    exe = str(Path(sys.executable).parent / "relaybus")
    work = Path(tempfile.mkdtemp(prefix="rb-cli-bench-", dir="/tmp"))
    peer = contextlib.ExitStack()
    try:
        skip = ("RELAYBUS_", "CLAUDE", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env.update(
            RELAYBUS_DAEMON="0",
            RELAYBUS_SESSION="bench-session",
            RELAYBUS_TOOL="claude",
            XDG_RUNTIME_DIR=str(work),
            XDG_STATE_HOME=str(work / "state"),
        )
        project = setup(work, exe, env)
        before_exe = before_project = None
        if args.before is not None:
            before_exe = str(args.before.resolve() / "bin" / "relaybus")
            before_work = work / "before"
            before_work.mkdir()
            before_project = setup(before_work, before_exe, env)
        warm = {k: v for k, v in env.items() if k != "RELAYBUS_DAEMON"}
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], "", env, project),
            STACK_NAME: ([sys.executable, "-c", STACK], "", env, project),
        }
        if before_exe is not None and before_project is not None:
            python = str(Path(before_exe).parent / "python")
            commands["python -c pass (before)"] = ([python, "-c", "pass"], "", env, project)
        for name, argv, stdin in cases(exe, project):
            commands[name] = (argv, stdin, env, project)
            if args.warm and name != "relaybus --help":
                commands[f"{name} (warm)"] = (argv, stdin, warm, project)
            if args.compare is not None:
                other = {**env, "PYTHONPATH": str(args.compare.resolve())}
                commands[f"{name} (compare)"] = (argv, stdin, other, project)
        if before_exe is not None and before_project is not None:
            for name, argv, stdin in cases(before_exe, before_project):
                commands[f"{name} (before)"] = (argv, stdin, env, before_project)
                if args.warm and name != "relaybus --help":
                    commands[f"{name} (before, warm)"] = (argv, stdin, warm, before_project)
        peer_note = ""
        if args.peer:
            try:
                peer_commands = start_peer(peer)
            except agent_relay.PeerUnavailable as err:
                peer_note = f"agent-relay {agent_relay.VERSION}: skipped: {err}"
                print(peer_note, flush=True)
            else:
                commands.update(peer_commands)
        if args.warm:
            run([exe, "daemon", "start"], warm, project)
            if before_exe is not None and before_project is not None:
                run([before_exe, "daemon", "start"], warm, before_project)
        for argv, stdin, child_env, cwd in commands.values():  # warm the page cache, bytecode
            run(argv, child_env, cwd, stdin)
        samples = {name: Samples() for name in commands}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, (argv, stdin, child_env, cwd) in commands.items():
                wall, cpu = run(argv, child_env, cwd, stdin)
                samples[name].wall.append(wall)
                samples[name].cpu.append(cpu)
        load_after = os.getloadavg()[0]
        floors = {
            "": samples["python -c pass"],
            "(before": samples.get("python -c pass (before)", samples["python -c pass"]),
        }
        print(
            f"relaybus CLI start-up — python {sys.version.split()[0]}, {os.cpu_count()} cores, "
            f"{args.rounds} interleaved rounds, medians; load average (1 min) "
            f"{load_before:.2f} before, {load_after:.2f} after"
        )
        if args.compare is not None:
            print(f"(compare): PYTHONPATH={args.compare}")
        if args.before is not None:
            print(f"(before): {args.before}/bin/relaybus")
        print(f"\n{'command':44} {'wall ms':>8} {'x pass':>7} {'CPU ms':>8} {'x pass':>7}")
        for name, s in samples.items():
            floor = floors["(before" if "(before" in name else ""]
            wall = statistics.median(s.wall)
            cpu = statistics.median(s.cpu)
            floor_wall = statistics.median(floor.wall)
            floor_cpu = max(statistics.median(floor.cpu), 1e-3)
            print(
                f"{name:44} {wall * 1000:8.1f} {wall / floor_wall:7.1f}"
                f" {cpu * 1000:8.1f} {cpu / floor_cpu:7.1f}"
            )
        if PEER_AGENTS in samples:
            print_peer_ratios(samples)
        elif peer_note:
            print(f"\n{peer_note}")
    finally:
        peer.close()  # the peer's session, then its daemon (by pid)
        if args.warm:
            stop = [(exe, work / "shop")]
            if args.before is not None:
                stop.append((str(args.before.resolve() / "bin" / "relaybus"), work / "before/shop"))
            for command, folder in stop:
                if folder.is_dir():
                    subprocess.run([command, "daemon", "stop"], cwd=folder, env=env, check=False)
        shutil.rmtree(work, ignore_errors=True)


#: Names of the peer's timed commands (see :func:`start_peer`).
PEER_AGENTS = "agent-relay agents (peer)"
PEER_HISTORY = "agent-relay history (peer)"


def start_peer(
    stack: contextlib.ExitStack,
) -> dict[str, tuple[list[str], str, dict[str, str], Path]]:
    """Install the peer, start its daemon and a session of two agents on ``stack``.

    Returns the peer's commands to time, ``{name: (argv, stdin, env, cwd)}``: ``node -e 0``,
    ``agent-relay agents`` and ``agent-relay history``.

    Raises:
        agent_relay.PeerUnavailable: no ``node``/``npm``, or the install, daemon or session
            failed.
    """
    package = agent_relay.install()
    daemon = stack.enter_context(agent_relay.daemon(package))
    stack.enter_context(agent_relay.session(package, daemon))
    cli = agent_relay.cli(package)
    return {
        "node -e 0 (peer)": ([cli[0], "-e", "0"], "", daemon.env, daemon.project),
        PEER_AGENTS: ([*cli, "agents"], "", daemon.env, daemon.project),
        PEER_HISTORY: ([*cli, "history"], "", daemon.env, daemon.project),
    }


def print_peer_ratios(samples: dict[str, Samples]) -> None:
    """Print each relaybus command's wall and CPU median over the peer's ``agents`` and
    ``history`` medians (``0.5`` means it takes half as long)."""
    peer = {
        "agents": samples[PEER_AGENTS],
        "history": samples[PEER_HISTORY],
    }
    print(f"\nrelaybus over agent-relay {agent_relay.VERSION} (ratio of medians)")
    header = "".join(f" {f'/ {p} {kind}':>14}" for p in peer for kind in ("wall", "CPU"))
    print(f"{'command':44}{header}")
    for name, s in samples.items():
        if not name.startswith(("relaybus agents", "relaybus send", "relaybus inbox --peek")):
            continue
        if "(compare" in name or "(before" in name:
            continue
        wall, cpu = statistics.median(s.wall), statistics.median(s.cpu)
        cells = []
        for p in peer.values():
            cells.append(wall / statistics.median(p.wall))
            cells.append(cpu / max(statistics.median(p.cpu), 1e-3))
        print(f"{name:44}" + "".join(f" {cell:14.2f}" for cell in cells))


def cases(exe: str, project: Path) -> list[tuple[str, list[str], str]]:
    """``(name, argv, stdin)`` of each ``relaybus`` command timed, run by ``exe`` in
    ``project``."""
    hook_input = json.loads((PAYLOADS / "post-tool-use.json").read_text(encoding="utf-8"))
    hook_input["cwd"] = str(project)
    hook = json.dumps(hook_input)
    return [
        ("relaybus --help", [exe, "--help"], ""),
        ("relaybus agents", [exe, "agents"], ""),
        ("relaybus send", [exe, "--as", "alice", "send", "--to", "bob", "hello"], ""),
        ("relaybus inbox --peek", [exe, "--as", "bob", "inbox", "--peek"], ""),
        ("hook post-tool-use", [exe, "hook", "post-tool-use"], hook),
        ("hook post-tool-use --inline", [exe, "hook", "post-tool-use", "--inline"], hook),
    ]


if __name__ == "__main__":
    main()
