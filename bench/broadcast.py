"""Broadcast benchmark: a message to 1,000 registered agents, embedded and through the server.

Run: ``.venv/bin/python bench/broadcast.py [--before /work/main] [--quick]``.

The store holds 1,000 agents (two tags each, a capability, half of them listening on
channel ``dev`` only, the others on every channel) and a ``caster``. Two sends are timed:
``broadcast`` and ``tag:all`` on channel ``dev`` (both reach all 1,000, the second
through the tags and the channels). Printed, p50/p99 in ms:

1. embedded: each round copies the seeded store and runs ``--count`` sends of each kind
   through the SDK (``Relay.open``) in a fresh process, for this checkout and, with
   ``--before``, for another checkout with its own ``.venv`` (e.g. the main branch),
   the two alternating round by round (target: p50 <= 5 ms, p99 <= 20 ms). Each
   checkout's store is seeded by its own code, so each runs on its own schema (a newer
   schema that older code may serve would otherwise be measured for both).
   A third column, ``sqlite3``, is the floor: the same rows (the message, the deliveries
   by ``INSERT OR IGNORE ... SELECT`` as relaybus writes them, without a statement
   journal, and read back as one string, the event) written with the stdlib driver in
   one ``BEGIN IMMEDIATE`` transaction each, on this checkout's store and the same pragmas
   (and SQLite's own checkpoints inside the commits);
2. through the server: the same sends on the same state (each round a fresh copy of the
   seeded store and a fresh ``relaybus serve`` per checkout, in turns), ``POST
   /v1/messages`` until the 201 (target: as embedded);
3. sustained (``--sustained N``): N broadcasts in a row on one store, embedded and
   through the server, to show how a broadcast's cost grows with the unread backlog.

The deliveries pile up as a run goes on (every send adds 1,000), and writing them is
most of a send: each delivery goes into an index ordered by agent (the unread one since
migration 0006; three such b-trees before it), so 1,000 recipients touch up to 1,000
pages of it. Figures from different ``--count`` are not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:  # the workers time sends: they import no more than they use
    from bench.common import BlockingConnection

AGENTS = 1000
BODY = "release 4.2 is out: please rebase"
SENDS = {"broadcast": ("broadcast", None), "tag+channel": ("tag:all", "dev")}
TIMEOUT = 60.0
#: Lines of a server's ``/metrics`` once its first background tick has run both jobs.
SWEPT = ('relaybus_sweeps_total{job="sweep"}', 'relaybus_sweeps_total{job="prune"}')


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed(folder: Path, checkout: Path | None = None) -> Path:
    """A relay directory in ``folder`` with the caster and :data:`AGENTS` agents
    registered; returns the database file. With ``checkout``, by that checkout's own
    interpreter (``.venv``) in a subprocess, so the store has that checkout's schema:
    a newer schema that older code may serve would otherwise be measured for both."""
    if checkout is not None:
        python = checkout / ".venv" / "bin" / "python"
        subprocess.run([str(python), __file__, "--seed", str(folder)], check=True, env=clean_env())
        return folder / ".relay" / "relay.db"
    from relaybus import Relay

    relay_dir = folder / ".relay"
    with Relay.open(dir=relay_dir) as relay:
        relay.register("caster")
        for i in range(AGENTS):
            relay.register(
                f"agent-{i:04d}",
                tags=["all", f"t{i % 7}"],
                capabilities=[f"c{i % 3}"],
                channels=["dev"] if i % 2 else [],
            )
    db = relay_dir / "relay.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def fresh_copy(db: Path, folder: Path) -> Path:
    """A relay directory in ``folder`` holding a copy of the seeded database."""
    relay_dir = folder / ".relay"
    relay_dir.mkdir(parents=True)
    shutil.copyfile(db, relay_dir / "relay.db")
    os.chmod(relay_dir, 0o700)
    os.chmod(relay_dir / "relay.db", 0o600)
    return relay_dir


# -- 1: embedded ------------------------------------------------------------------------


def worker(relay_dir: Path, count: int, kinds: list[str] | None = None) -> None:
    """In a fresh process (the checkout's own interpreter): time ``count`` sends of each
    of ``kinds`` (default: every kind in :data:`SENDS`), alternating, and print
    ``{kind: [ms, ...]}`` as JSON."""
    from relaybus import Relay

    times: dict[str, list[float]] = {kind: [] for kind in kinds or SENDS}
    with Relay.open(dir=relay_dir) as relay:
        caster = relay.register("caster")
        for _ in range(count):
            for kind in times:
                target, channel = SENDS[kind]
                start = time.perf_counter()
                sent = caster.send(target, BODY, channel=channel)
                times[kind].append((time.perf_counter() - start) * 1000)
                if len(sent.recipients) != AGENTS:
                    raise RuntimeError(f"{kind}: {len(sent.recipients)} recipients")
    print(json.dumps(times))


#: The floor's statements: what a send writes, in SQL (``:mid``, ``:now`` bound).
FLOOR_SQL = {
    "broadcast": "",
    "tag+channel": (
        " AND EXISTS (SELECT 1 FROM json_each(agents.tags) WHERE json_each.value = 'all')"
        " AND (json_array_length(agents.channels) = 0"
        " OR EXISTS (SELECT 1 FROM json_each(agents.channels) WHERE json_each.value = 'dev'))"
    ),
}


def floor_worker(relay_dir: Path, count: int) -> None:
    """As :func:`worker`, with the stdlib driver and SQL written out (the floor)."""
    conn = sqlite3.connect(relay_dir / "relay.db", isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    times: dict[str, list[float]] = {kind: [] for kind in SENDS}
    for _ in range(count):
        for kind, (target, channel) in SENDS.items():
            start = time.perf_counter()
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE agents SET last_seen_at = ? WHERE workspace = 'default' AND id = 'caster'",
                (now,),
            )
            mid = conn.execute(
                "INSERT INTO messages (workspace, sender, target, channel, body, priority, meta,"
                " created_at) VALUES ('default', 'caster', ?, ?, ?, 'normal', '{}', ?)"
                " RETURNING id",
                (target, channel, BODY, now),
            ).fetchone()[0]
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (workspace, agent_id, message_id)"
                " SELECT workspace, id, ? FROM agents WHERE workspace = 'default'"
                f" AND id != 'caster'{FLOOR_SQL[kind]}",
                (mid,),
            )
            (joined,) = conn.execute(
                "SELECT group_concat(agent_id, ',') FROM deliveries WHERE message_id = ?",
                (mid,),
            ).fetchone()
            recipients = sorted(joined.split(","))
            data = {"message_id": mid, "to": target, "recipients": recipients}
            conn.execute(
                "INSERT INTO events (workspace, kind, agent_id, data, created_at)"
                " VALUES ('default', 'message.sent', 'caster', ?, ?)",
                (json.dumps(data), now),
            )
            conn.execute("COMMIT")
            times[kind].append((time.perf_counter() - start) * 1000)
            if len(recipients) != AGENTS:
                raise RuntimeError(f"{kind}: {len(recipients)} recipients")
    conn.close()
    print(json.dumps(times))


def embedded(
    checkouts: dict[str, Path], dbs: dict[str, Path], root: Path, rounds: int, count: int
) -> dict[str, dict[str, list[list[float]]]]:
    """Per checkout and kind, every send's time (ms) over ``rounds`` interleaved rounds
    (a list per round), each checkout on a copy of its own seeded store (``dbs``; the
    floor on ``after``'s)."""
    names = [*checkouts, "sqlite3"]
    found: dict[str, dict[str, list[list[float]]]] = {n: {k: [] for k in SENDS} for n in names}
    for r in range(rounds):
        order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
        for name in [*order, "sqlite3"]:
            folder = root / f"embedded-{name}-{r}"
            relay_dir = fresh_copy(dbs.get(name, dbs["after"]), folder)
            if name == "sqlite3":
                python, mode = Path(sys.executable), "--floor"
            else:
                python, mode = checkouts[name] / ".venv" / "bin" / "python", "--worker"
            for kind, samples in run_worker(python, mode, relay_dir, count).items():
                found[name][kind].append(samples)
            shutil.rmtree(folder)
    return found


def run_worker(python: Path, mode: str, relay_dir: Path, count: int, *more: str) -> Any:
    """Run this file with ``python`` in ``mode`` (``--worker`` or ``--floor``) on
    ``relay_dir`` in a fresh process; returns what it printed, ``{kind: [ms, ...]}``."""
    out = subprocess.run(
        [str(python), __file__, mode, str(relay_dir), "--count", str(count), *more],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        env=clean_env(),
    ).stdout
    return json.loads(out)


def clean_env() -> dict[str, str]:
    """The environment without ``RELAYBUS_*`` (no warm relay, no settings of the user's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env["RELAYBUS_DAEMON"] = "0"
    return env


# -- 2: through the server --------------------------------------------------------------


def through_servers(
    checkouts: dict[str, Path], dbs: dict[str, Path], root: Path, rounds: int, count: int
) -> dict[str, dict[str, list[list[float]]]]:
    """Per checkout and kind, the time (ms) of each ``POST /v1/messages`` until its 201
    (a list per round):
    the same sends as :func:`embedded` (``count`` of each kind in :data:`SENDS`,
    alternating) on the same state (a fresh copy of the checkout's seeded store each
    round), so that the two differ only by the server's path. Each round starts one
    ``relaybus serve`` per checkout, in turns. The client is
    :class:`bench.common.BlockingConnection` on a keep-alive connection: about 0.2 ms
    of this process's CPU a broadcast, which counts as the server's."""
    found: dict[str, dict[str, list[list[float]]]] = {n: {k: [] for k in SENDS} for n in checkouts}
    for r in range(rounds):
        order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
        for name in order:
            folder = root / f"server-{name}-{r}"
            relay_dir = fresh_copy(dbs[name], folder)
            with served(checkouts[name], relay_dir, folder) as (conn, headers):
                for kind, samples in _post_sends(conn, headers, name, count).items():
                    found[name][kind].append(samples)
            shutil.rmtree(folder)
    return found


def sustained(
    checkouts: dict[str, Path], dbs: dict[str, Path], root: Path, count: int
) -> dict[str, list[float]]:
    """``count`` broadcasts in a row on one fresh copy of each checkout's seeded store,
    embedded (``E:`` + name) and through the server (``S:`` + name): every broadcast
    leaves 1,000 unread deliveries, so later ones touch more pages of the agent-ordered
    unread index (see the module docstring); this shows how the cost grows with that
    backlog, where :func:`embedded` and :func:`through_servers` measure a store that
    starts with none."""
    found: dict[str, list[float]] = {}
    for name, checkout in checkouts.items():
        relay_dir = fresh_copy(dbs[name], root / f"sustained-embedded-{name}")
        python = checkout / ".venv" / "bin" / "python"
        times = run_worker(python, "--worker", relay_dir, count, "--kinds", "broadcast")
        found[f"E:{name}"] = times["broadcast"]
        folder = root / f"sustained-server-{name}"
        relay_dir = fresh_copy(dbs[name], folder)
        with served(checkout, relay_dir, folder) as (conn, headers):
            found[f"S:{name}"] = _post_sends(conn, headers, name, count, ["broadcast"])["broadcast"]
    return found


@contextlib.contextmanager
def served(
    checkout: Path, relay_dir: Path, folder: Path
) -> Iterator[tuple[BlockingConnection, dict[str, str]]]:
    """``relaybus serve`` of ``checkout`` on ``relay_dir``, with ``caster`` registered
    and the server's first background sweep and prune done (they mark the seeded
    agents, whose process is gone, offline: a one-off that would otherwise land on a
    timed send). Yields a keep-alive connection and the caster's headers."""
    from bench.common import BlockingConnection, announced_server

    env = clean_env()
    env["RELAYBUS_DIR"] = str(relay_dir)
    python = str(checkout / ".venv" / "bin" / "python")
    command = [python, "-m", "relaybus", "serve", "--port", "0"]
    with announced_server(command, folder, env, TIMEOUT) as (url, _pid):
        conn = BlockingConnection(url, TIMEOUT)
        try:
            status, answer = _post(conn, "/v1/agents", json.dumps({"id": "caster"}), {})
            if status != 201:
                raise RuntimeError(f"{checkout}: register: {status} {answer[:200]!r}")
            _swept(conn, str(checkout))
            yield conn, {"Authorization": f"Bearer {json.loads(answer)['token']}"}
        finally:
            conn.close()


def _post_sends(
    conn: BlockingConnection,
    headers: dict[str, str],
    name: str,
    count: int,
    kinds: list[str] | None = None,
) -> dict[str, list[float]]:
    # ``count`` sends of each of ``kinds`` (default: every kind of SENDS), alternating, as
    # :func:`worker` sends them; each timed until its 201, checked to reach every agent.
    times: dict[str, list[float]] = {kind: [] for kind in kinds or SENDS}
    for _ in range(count):
        for kind in times:
            target, channel = SENDS[kind]
            content = json.dumps(
                {"sender": "caster", "to": target, "body": BODY, "channel": channel}
            )
            start = time.perf_counter()
            status, answer = _post(conn, "/v1/messages", content, headers)
            times[kind].append((time.perf_counter() - start) * 1000)
            if status != 201 or len(json.loads(answer)["recipients"]) != AGENTS:
                raise RuntimeError(f"{name} {kind}: {status} {answer[:200]!r}")
    return times


def _swept(conn: BlockingConnection, name: str) -> None:
    """Wait until the server on ``conn`` has run its first sweep and prune (its
    ``/metrics`` says so).

    Raises:
        RuntimeError: not within :data:`TIMEOUT` seconds.
    """
    until = time.monotonic() + TIMEOUT
    while time.monotonic() < until:
        text = conn.request("GET", "/metrics")[1].decode()
        if all(line in text for line in SWEPT):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name}: no background sweep within {TIMEOUT:g} s")


def _post(
    conn: BlockingConnection, path: str, body: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    # One JSON POST on the keep-alive connection: status and body.
    return conn.request("POST", path, body.encode(), headers)


def split_lines(name: str, rounds: list[list[float]]) -> list[str]:
    """:func:`line` of the sends of ``rounds`` (each a fresh process's, in order) but
    each round's first, and a line of those first sends (marked ``1st``)."""
    later = [ms for samples in rounds for ms in samples[1:]]
    return [line(name, later), line(f"{name} 1st", [samples[0] for samples in rounds])]


def line(name: str, samples: list[float]) -> str:
    return (
        f"  {name:<22} p50 {percentile(samples, 0.5):7.2f}  p99 {percentile(samples, 0.99):7.2f}"
        f"  mean {statistics.fmean(samples):7.2f} ms  ({len(samples)} sends)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--count", type=int, default=10, help="sends of each kind per round")
    parser.add_argument(
        "--sustained", type=int, default=40, help="broadcasts in a row on one store (0: none)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kinds", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.seed)
        return
    if args.worker:
        worker(args.worker, args.count, args.kinds)
        return
    if args.floor:
        floor_worker(args.floor, args.count)
        return
    if args.quick:
        args.rounds, args.count, args.sustained = 2, 5, 10
    here = Path(__file__).resolve().parents[1]
    checkouts = {"after": here}
    if args.before:
        checkouts = {"before": args.before.resolve(), "after": here}
    with tempfile.TemporaryDirectory(prefix="relaybus-broadcast-") as tmp:
        root = Path(tmp)
        dbs = {name: seed(root / f"seed-{name}", path) for name, path in checkouts.items()}
        print(f"broadcast to {AGENTS} registered agents; checkouts: {checkouts}")
        print(f"\n1. embedded (SDK), {args.rounds} interleaved rounds x {args.count} sends")
        timings = embedded(checkouts, dbs, root, args.rounds, args.count)
        for name, kinds in timings.items():
            for kind, rounds in kinds.items():
                print("\n".join(split_lines(f"{name} {kind}", rounds)))
        print(
            f"\n2. through the server (POST /v1/messages), the same sends: {args.rounds}"
            f" interleaved rounds x {args.count}"
        )
        served_timings = through_servers(checkouts, dbs, root, args.rounds, args.count)
        for name, kinds in served_timings.items():
            for kind, rounds in kinds.items():
                print("\n".join(split_lines(f"{name} {kind}", rounds)))
        if args.sustained:
            print(
                f"\n3. sustained: {args.sustained} broadcasts in a row on one store"
                " (E: embedded, S: through the server)"
            )
            for name, samples in sustained(checkouts, dbs, root, args.sustained).items():
                print(line(f"{name} broadcast", samples))


if __name__ == "__main__":
    main()
