"""The peer relaybus is measured against: ``agent-relay`` 1.6.0 from the npm registry.

agent-relay is a Node daemon listening on a Unix socket (length-prefixed JSON
frames), storing messages in SQLite (better-sqlite3, WAL). This module
installs it into a cache directory, starts its daemon, and runs the
two-agent workload (see :mod:`bench.common`) through the package's own client
library (``dist/wrapper/client.js``, driven by ``agent_relay_driver.mjs``).

Run alone: ``.venv/bin/python bench/peers/agent_relay.py [--quick]``;
``bench/server.py`` runs the same rounds next to relaybus's. ``bench/cli.py --peer``
times the peer's own CLI (``agent-relay agents``, ``history``; :func:`cli`) while
:func:`session` keeps two agents connected that have exchanged a few messages.

How it is run, and why:
- installed with ``npm install --prefix ~/.cache/relaybus-bench/agent-relay
  agent-relay@1.6.0`` (:func:`install`); without ``node``/``npm``, or if the
  install fails, :class:`PeerUnavailable` says why and callers skip the peer;
- the daemon is ``node <package>/dist/cli/index.js up --no-spawn
  --no-dashboard``, started from a fresh directory of its own (its ``up``
  command may signal other ``agent-relay … up`` processes of the same working
  directory), with ``AGENT_RELAY_DATA_DIR`` and ``HOME`` inside the cache (it
  keeps an update-check cache under ``$HOME``; a fresh one is written so it
  makes no network request), and stopped by its pid: SIGTERM, then SIGKILL;
- the daemon's log goes to a file in its run directory (it logs two lines
  per routed message at its default level, as it does for a user);
- its default per-sender rate limit (token bucket: 500 messages/s, burst
  1,000) silently drops what is over, so each part of each round uses a
  fresh pair of agents and at most 1,000 messages;
- its client ``console.log``s every delivery; the driver silences
  ``console.log`` so terminal or pipe writes do not count against it.
- per routed message the daemon inserts into SQLite (WAL, better-sqlite3's
  default ``synchronous=FULL``: an fsync per message) and rewrites JSON state
  files (``agents.json`` twice, ``processing-state.json``; write + rename
  each), so its figures follow the disk's latency; :func:`daemon` with
  ``in_memory=True`` keeps all of that on tmpfs, for the peer without disk
  costs. The DELIVER frame is queued before the insert but written to the
  socket on the next event-loop turn, after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import TwoAgentRound, TwoAgentSummary  # noqa: E402

PACKAGE = "agent-relay"
VERSION = "1.6.0"
#: Where the package is installed and its daemons keep their data.
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "relaybus-bench" / PACKAGE
)
DRIVER = Path(__file__).with_name("agent_relay_driver.mjs")
SESSION = Path(__file__).with_name("agent_relay_session.mjs")
#: Seconds allowed for ``npm install`` (it compiles better-sqlite3 if no prebuilt fits).
INSTALL_TIMEOUT = 900.0
#: Seconds for the daemon to start listening, or to stop after SIGTERM.
DAEMON_TIMEOUT = 30.0
#: A memory file system, for the daemon's data in :func:`daemon` ``(in_memory=True)``.
TMPFS = Path("/dev/shm")
#: Messages per part of a round (one sender each): the daemon's rate-limit burst.
MAX_PER_SENDER = 1000


class PeerUnavailable(Exception):
    """The peer cannot be installed or started here; the message says why."""


def install(cache: Path = CACHE) -> Path:
    """Install ``agent-relay@1.6.0`` into ``cache`` (once) and return the package folder.

    Raises:
        PeerUnavailable: ``node`` or ``npm`` is missing, or the install failed.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PeerUnavailable("node and npm are needed to run the peer (agent-relay); not found")
    package = cache / "node_modules" / PACKAGE
    if _installed(package):
        return package
    cache.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(cache), f"{PACKAGE}@{VERSION}"]
            + ["--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(
            f"npm install {PACKAGE}@{VERSION} took over {INSTALL_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0 or not _installed(package):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PeerUnavailable(f"npm install {PACKAGE}@{VERSION} failed: " + " | ".join(tail))
    return package


def _installed(package: Path) -> bool:
    try:
        meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    native = package.parent / "better-sqlite3" / "build" / "Release" / "better_sqlite3.node"
    return bool(meta.get("version") == VERSION and native.exists())


@dataclass
class Daemon:
    """A running agent-relay daemon: its ``pid``, ``socket`` path and run directory.

    ``project`` (the folder it was started from) and ``env`` (its environment) are where
    and how to run the peer's own CLI against it (``agents``, ``history``): the CLI finds
    the daemon's data from the working directory, ``AGENT_RELAY_DATA_DIR`` and ``HOME``.
    """

    pid: int
    socket: Path
    run_dir: Path
    project: Path
    env: dict[str, str]


@contextlib.contextmanager
def daemon(package: Path, cache: Path = CACHE, *, in_memory: bool = False) -> Iterator[Daemon]:
    """Start an agent-relay daemon with fresh data; stop it (by pid) and delete its data.

    Args:
        in_memory: keep its data (SQLite file, JSON state files) on tmpfs
            (:data:`TMPFS`) instead of in ``cache``: the peer without disk costs.

    Raises:
        PeerUnavailable: it exited or did not listen within :data:`DAEMON_TIMEOUT`;
            ``in_memory`` without a tmpfs.
    """
    if in_memory:
        if not TMPFS.is_dir():
            raise PeerUnavailable(f"no tmpfs at {TMPFS}")
        run_dir = Path(tempfile.mkdtemp(prefix="relaybus-bench-agent-relay-", dir=TMPFS))
    else:
        (cache / "runs").mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache / "runs"))
    project, data, home = run_dir / "project", run_dir / "data", run_dir / "home"
    (project / ".agent-relay").mkdir(parents=True)  # marks the project root: this folder
    data.mkdir()
    (home / ".agent-relay").mkdir(parents=True)
    (home / ".agent-relay" / "update-cache.json").write_text(
        json.dumps({"lastCheck": int(time.time() * 1000), "latestVersion": VERSION}),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RELAY_")}
    env.update(AGENT_RELAY_DATA_DIR=str(data), HOME=str(home))
    node = shutil.which("node") or "node"
    cli = package / "dist" / "cli" / "index.js"
    with open(run_dir / "daemon.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [node, str(cli), "up", "--no-spawn", "--no-dashboard"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        socket = _wait_for_socket(proc, data)
        yield Daemon(pid=proc.pid, socket=socket, run_dir=run_dir, project=project, env=env)
    finally:
        _stop(proc)
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait_for_socket(proc: subprocess.Popen[bytes], data: Path) -> Path:
    deadline = time.monotonic() + DAEMON_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"the agent-relay daemon exited with code {proc.returncode}")
        found = list(data.glob("*/relay.sock"))
        if found and found[0].with_name("relay.sock.pid").exists():
            return found[0]
        time.sleep(0.05)  # polling a file the daemon creates: there is nothing to wait on
    raise PeerUnavailable(f"the agent-relay daemon did not listen within {DAEMON_TIMEOUT:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(DAEMON_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(DAEMON_TIMEOUT)


def cli(package: Path) -> list[str]:
    """The argv prefix of the peer's CLI, as its ``agent-relay`` shim runs it.

    npm links ``node_modules/.bin/agent-relay`` to ``dist/cli/index.js`` (``#!/usr/bin/env
    node``): a user's ``agent-relay agents`` is ``node <package>/dist/cli/index.js agents``.
    """
    return [shutil.which("node") or "node", str(package / "dist" / "cli" / "index.js")]


@contextlib.contextmanager
def session(
    package: Path,
    peer: Daemon,
    *,
    agents: tuple[str, str] = ("alice", "bob"),
    messages: int = 10,
    timeout: float = 30.0,
) -> Iterator[None]:
    """Connect ``agents`` to ``peer``, send ``messages`` from the first to the second; keep
    them connected (listed online by ``agent-relay agents``) until the block ends.

    Runs ``agent_relay_session.mjs`` (the package's own client library) as one Node process;
    on exit closes its stdin and waits for it (killed by pid after ``timeout`` seconds).

    Raises:
        PeerUnavailable: the session process failed before it was ready (its stderr says why).
    """
    config = {"agents": list(agents), "messages": messages, "timeout_s": timeout}
    node = shutil.which("node") or "node"
    proc = subprocess.Popen(
        [node, str(SESSION), str(package), str(peer.socket), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        if proc.stdout.readline().strip() != "ready":  # the driver times out its own waits
            proc.wait(timeout)
            raise PeerUnavailable(f"the agent-relay session failed: {proc.stderr.read()[-500:]}")
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        proc.stdout.close()
        proc.stderr.close()


def run_rounds(
    package: Path,
    socket: Path,
    *,
    sequential: int,
    pipelined: int,
    rounds: int = 1,
    warmup: int = 100,
    body_bytes: int = 64,
    timeout: float = 60.0,
) -> list[TwoAgentRound]:
    """Run ``rounds`` rounds of the two-agent workload against the daemon on ``socket``.

    Args:
        sequential, pipelined: messages in each part of a round (each at most
            :data:`MAX_PER_SENDER`, the daemon's burst).
        warmup: sequential messages sent first, not measured (the driver is a
            new Node process each call: its JIT starts cold).
        timeout: seconds to wait for any one message (or the whole pipelined part).

    Raises:
        ValueError: more messages per round than the daemon lets one sender send.
        PeerUnavailable: the driver failed (a message never arrived, the daemon died).
    """
    if max(sequential, pipelined, warmup) > MAX_PER_SENDER:
        raise ValueError(f"at most {MAX_PER_SENDER} messages per part (the peer's rate limit)")
    config = {
        "sequential": sequential,
        "pipelined": pipelined,
        "rounds": rounds,
        "warmup": warmup,
        "body_bytes": body_bytes,
        "timeout_s": timeout,
    }
    node = shutil.which("node") or "node"
    try:
        done = subprocess.run(
            [node, str(DRIVER), str(package), str(socket), json.dumps(config)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout * (rounds + 1) + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PeerUnavailable("the agent-relay driver hung") from None
    if done.returncode != 0:
        raise PeerUnavailable(f"the agent-relay driver failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return [
        TwoAgentRound(
            sequential_ms=[float(ms) for ms in r["sequential_ms"]],
            sequential_s=float(r["sequential_s"]),
            pipelined=int(r["pipelined_received"]),
            pipelined_s=float(r["pipelined_s"]),
        )
        for r in result["rounds"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="agent-relay 1.6.0: the two-agent workload")
    parser.add_argument("--sequential", type=int, default=500, help="messages per round")
    parser.add_argument("--pipelined", type=int, default=1000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--in-memory", action="store_true", help="the daemon's data on tmpfs")
    args = parser.parse_args()
    if args.quick:
        args.sequential, args.pipelined, args.rounds = 100, 200, 1
    try:
        package = install()
        with daemon(package, in_memory=args.in_memory) as peer:
            rounds = run_rounds(
                package,
                peer.socket,
                sequential=args.sequential,
                pipelined=args.pipelined,
                rounds=args.rounds,
            )
    except PeerUnavailable as err:
        print(f"agent-relay {VERSION}: skipped: {err}")
        return
    s = TwoAgentSummary.of(rounds)
    where = "on tmpfs" if args.in_memory else "on disk"
    print(f"agent-relay {VERSION}, 64-byte bodies, {args.rounds} rounds, data {where}")
    print(
        f"  sequential {s.sequential_rate:7.0f} msg/s   p50 {s.p50_ms:5.2f} ms"
        f"   p99 {s.p99_ms:5.2f} ms   ({args.sequential} msgs/round)"
    )
    print(f"  pipelined  {s.pipelined_rate:7.0f} msg/s   ({args.pipelined} msgs/round)")


if __name__ == "__main__":
    main()
