"""Integration events against a claimable send, in the service alone (no HTTP).

Run: ``.venv/bin/python bench/ingress_service.py [--count N] [--rounds N]``.

On a fresh SQLite relay in a temporary folder, with two agents holding ``cap:ops`` and
an integration allowed to reach them (callback URL set, so each task change also
writes its outbox row): the process CPU per call, in this one thread, of

- ``send``: a claimable message from an agent to ``cap:ops`` (opens a task);
- ``event``: an integration event with a new dedupe key (a task and its message);
- ``repeat``: an event repeating one key (the occurrence count raised);
- ``operator``: an event from the operator (no integration: no rate limit, no outbox).

Rounds alternate the kinds; medians over rounds. Figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from relaybus.service import Service
from relaybus.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="calls per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        service = Service(Store(f"sqlite:///{folder}/relay.db"))
        service.register("ops1", capabilities=["ops"])
        service.register("ops2", capabilities=["ops"])
        service.register("author")
        service.add_integration(
            "hooked", targets=["cap:ops"], callback_url="http://127.0.0.1:9/x", rate_limit=10**6
        )
        serial = iter(range(10**9))
        kinds: dict[str, Callable[[], object]] = {
            "send": lambda: service.send("author", "cap:ops", "t", subject="t", claimable=True),
            "event": lambda: service.ingest_event(
                "hooked", title="t", dedupe_key=f"k{next(serial)}"
            ),
            "repeat": lambda: service.ingest_event("hooked", title="t", dedupe_key="same"),
            "operator": lambda: service.ingest_event(None, title="t", target="cap:ops"),
        }
        found: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind, call in kinds.items():
                start = time.process_time()
                for _ in range(args.count):
                    call()
                found[kind].append((time.process_time() - start) / args.count * 1000)
        service.close()
    for kind, figures in found.items():
        rounds = ", ".join(f"{f:.2f}" for f in figures)
        print(f"{kind:9} {statistics.median(figures):.2f} ms of CPU a call (rounds: {rounds})")


if __name__ == "__main__":
    main()
