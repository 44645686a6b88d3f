"""Listing messages over a large store: one page of ``Service.list_messages`` (what
``GET /v1/messages`` and the dashboard's Messages view read) and its receipts.

    .venv/bin/python bench/message_list.py [--messages 100000] [--agents 50] [--rounds 15]

A SQLite store is seeded through the service with ``--messages`` direct messages
among ``--agents`` agents (every 50th on channel ``deploys``, every 1000th holding the
word ``needle``). Each round then times, in turn (interleaved, so that the machine's
load falls on every case alike), one 100-message page of each case: the admin's newest
page and one deep in the store (``before`` = the middle id), an agent's own view, a
``recipient`` filter, a channel, a text search that matches 1 in 1000 messages, and the
receipts of a page (``Service.receipts``); and, for the plan's sake, the bare newest-page
query both ways (``workspace = ?``, which SQLite answers through the thread index and a
sort of the whole workspace, and ``+workspace = ?``, the key walked backwards, as
``list_messages`` asks: see ``relaybus.service.message_list.unindexed``). Medians and
the worst round, milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def seed(service: Any, agents: int, messages: int) -> list[str]:
    """``agents`` agents and ``messages`` direct messages between them."""
    names = [f"agent-{i:03d}" for i in range(agents)]
    for name in names:
        service.register(name)
    batch = 500
    for start in range(0, messages, batch):
        sender = names[(start // batch) % agents]
        items = []
        for k in range(min(batch, messages - start)):
            n = start + k
            items.append(
                {
                    "to": names[(n * 7 + 1) % agents]
                    if names[(n * 7 + 1) % agents] != sender
                    else names[(n * 7 + 2) % agents],
                    "channel": "deploys" if n % 50 == 0 else None,
                    "body": f"message {n}: "
                    + ("needle in" if n % 1000 == 0 else "the build is green"),
                }
            )
        service.send_many(sender, items)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import sqlalchemy as sa

    from relaybus.service import Service
    from relaybus.service.message_list import unindexed
    from relaybus.settings import Settings
    from relaybus.store import open_store
    from relaybus.store.schema import messages

    with tempfile.TemporaryDirectory(prefix="relaybus-bench-list-") as tmp:
        store = open_store(Settings(dir=Path(tmp) / ".relay"))
        try:
            service = Service(store)
            began = time.monotonic()
            names = seed(service, args.agents, args.messages)
            print(
                f"seeded {args.messages:,} messages among {args.agents} agents "
                f"in {time.monotonic() - began:.1f} s"
            )
            middle = args.messages // 2
            page = [m.id for m in service.list_messages(limit=100)]
            cases: dict[str, Callable[[], object]] = {
                "admin, newest page": lambda: service.list_messages(limit=100),
                "admin, page at the middle": lambda: service.list_messages(
                    before=middle, limit=100
                ),
                "an agent's own view": lambda: service.list_messages(viewer=names[3], limit=100),
                "recipient filter": lambda: service.list_messages(recipient=names[3], limit=100),
                "channel (1 in 50)": lambda: service.list_messages(channel="deploys", limit=100),
                "text search (1 in 1000)": lambda: service.list_messages(q="NEEDLE", limit=100),
                "agent + text search": lambda: service.list_messages(
                    viewer=names[3], q="needle", limit=100
                ),
                "receipts of a page": lambda: service.receipts(page),
            }

            def bare(column: Any) -> Callable[[], object]:
                query = sa.select(messages).where(column == "default")
                query = query.order_by(messages.c.id.desc()).limit(100)

                def run() -> object:
                    with store.read() as conn:
                        return conn.execute(query).all()

                return run

            cases["SQL: workspace = ?"] = bare(messages.c.workspace)
            cases["SQL: +workspace = ?"] = bare(unindexed(messages.c.workspace))
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.rounds):
                for name, run in cases.items():
                    start = time.perf_counter()
                    run()
                    samples[name].append((time.perf_counter() - start) * 1000)
            for name, times in samples.items():
                print(
                    f"{name:<28} median {statistics.median(times):7.1f} ms, "
                    f"worst {max(times):7.1f} ms ({args.rounds} rounds)"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
