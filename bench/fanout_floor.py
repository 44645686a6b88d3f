"""What a broadcast to 1,000 agents could cost with another delivery layout: SQLite's floor.

Run: ``.venv/bin/python bench/fanout_floor.py [--count 100] [--rounds 2]``.

Writes ``--count`` broadcasts in a row to the 1,000 agents of ``bench/broadcast.py``'s
seeded store with the standard library's ``sqlite3`` (WAL, ``synchronous = NORMAL``,
SQLite's own checkpoints inside the commits), one ``BEGIN IMMEDIATE`` transaction each,
in four layouts, the layouts taking turns round by round:

- ``rows``: today's: one delivery row per recipient (``INSERT OR IGNORE ... SELECT``,
  then the recipients read back as one string, as relaybus writes them), in a
  message-ordered key and in the agent-ordered unread index, where each lands on its
  own leaf page once the backlog is large;
- ``agent``: one agent-ordered b-tree of deliveries (no message-ordered key), and the
  recipient list kept with the message (one string) for what asks who got it: the
  agents scanned twice, a b-tree insert per recipient instead of two;
- ``counter``: one row per message holding its recipient list (JSON), and each
  recipient's unread counter raised on ``agents`` (``UPDATE ... RETURNING``): the agents'
  rows fill a few dozen pages, whatever the backlog;
- ``bare``: the counters alone, without reading the recipients back.

Each also writes the message row and its event. Printed per layout: the p50 of the
first 10 broadcasts, of the last 20 and of all (ms). Nothing here is relaybus's code:
it bounds what a layout change could gain (docs/benchmarks.md, 2026-12-04).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.broadcast import AGENTS, BODY, seed

LAYOUTS = ("rows", "agent", "counter", "bare")
SENDER = "agent-0000"


def broadcasts(db: Path, layout: str, count: int) -> list[float]:
    """``count`` broadcasts in a row on a copy of ``db`` in ``layout``: each one's ms."""
    with tempfile.TemporaryDirectory(prefix="relaybus-fanout-") as tmp:
        copy = Path(tmp) / "relay.db"
        shutil.copyfile(db, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if layout != "rows":
            conn.execute("ALTER TABLE agents ADD COLUMN unread INTEGER NOT NULL DEFAULT 0")
            conn.execute(
                "CREATE TABLE set_recipients (message_id INTEGER PRIMARY KEY, recipients TEXT)"
            )
        if layout == "agent":
            conn.execute(
                "CREATE TABLE agent_deliveries (workspace TEXT NOT NULL, agent_id TEXT NOT NULL,"
                " message_id INTEGER NOT NULL, read_at REAL, delivered_at REAL,"
                " PRIMARY KEY (workspace, agent_id, message_id)) WITHOUT ROWID"
            )
        times = []
        for _ in range(count):
            start = time.perf_counter()
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            mid = conn.execute(
                "INSERT INTO messages (workspace, sender, target, body, priority, meta,"
                " created_at) VALUES ('default', ?, 'broadcast', ?, 'normal', '{}', ?)"
                " RETURNING id",
                (SENDER, BODY, now),
            ).fetchone()[0]
            others = "workspace = 'default' AND id != ?"
            if layout == "rows":
                conn.execute(
                    "INSERT OR IGNORE INTO deliveries (workspace, agent_id, message_id)"
                    f" SELECT workspace, id, ? FROM agents WHERE {others}",
                    (mid, SENDER),
                )
                (joined,) = conn.execute(
                    "SELECT group_concat(agent_id, ',') FROM deliveries WHERE message_id = ?",
                    (mid,),
                ).fetchone()
                # Sorted as relaybus answers with them (its send's recipients).
                reached = len(sorted(joined.split(",")))
            elif layout == "agent":
                (joined,) = conn.execute(
                    f"SELECT group_concat(id, ',') FROM agents WHERE {others}", (SENDER,)
                ).fetchone()
                conn.execute("INSERT INTO set_recipients VALUES (?, ?)", (mid, joined))
                conn.execute(
                    "INSERT OR IGNORE INTO agent_deliveries (workspace, agent_id, message_id)"
                    f" SELECT workspace, id, ? FROM agents WHERE {others}",
                    (mid, SENDER),
                )
                reached = len(sorted(joined.split(",")))
            elif layout == "counter":
                ids = conn.execute(
                    f"UPDATE agents SET unread = unread + 1 WHERE {others} RETURNING id",
                    (SENDER,),
                ).fetchall()
                conn.execute(
                    "INSERT INTO set_recipients VALUES (?, ?)",
                    (mid, json.dumps(sorted(row[0] for row in ids))),
                )
                reached = len(ids)
            else:
                reached = conn.execute(
                    f"UPDATE agents SET unread = unread + 1 WHERE {others}", (SENDER,)
                ).rowcount
            conn.execute(
                "INSERT INTO events (workspace, kind, agent_id, data, created_at)"
                " VALUES ('default', 'message.sent', ?, '{}', ?)",
                (SENDER, now),
            )
            conn.execute("COMMIT")
            times.append((time.perf_counter() - start) * 1000)
            if reached < AGENTS - 1:
                raise RuntimeError(f"{layout}: reached {reached} agents")
        conn.close()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="broadcasts in a row (100)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every layout (2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relaybus-fanout-seed-") as tmp:
        db = seed(Path(tmp))
        found: dict[str, list[list[float]]] = {layout: [] for layout in LAYOUTS}
        for r in range(args.rounds):
            order = LAYOUTS if r % 2 == 0 else tuple(reversed(LAYOUTS))
            for layout in order:
                found[layout].append(broadcasts(db, layout, args.count))
    print(f"{args.count} broadcasts in a row to {AGENTS} agents, {args.rounds} rounds; p50 ms")
    for layout, runs in found.items():
        first = statistics.median(t for run in runs for t in run[:10])
        last = statistics.median(t for run in runs for t in run[-20:])
        every = statistics.median(t for run in runs for t in run)
        print(f"  {layout:<8} first 10 {first:7.2f}  last 20 {last:7.2f}  all {every:7.2f}")


if __name__ == "__main__":
    main()
