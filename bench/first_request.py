"""What a fresh relay server spends on its first requests.

Run: ``.venv/bin/python bench/first_request.py`` (``--before CHECKOUT``, a checkout with
its own ``.venv``, measures that checkout too, rounds taking turns).

Each round is a fresh process: it opens a migrated SQLite store, builds the app
(``create_app``), serves it with uvicorn on 127.0.0.1 and sends one client request of
each kind below twice in a row, reading the process's CPU time (server and client
share the process) around each. A fresh warm relay pays the first-request figure once
per route family, and the test suite pays it for every server it starts. Prints the
medians over the rounds, in ms of CPU: app start, each request's first and second call,
and the sum of the first calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

#: (method, path, JSON body or None): one request of each route family a session uses.
REQUESTS = [
    ("GET", "/healthz", None),
    ("POST", "/v1/agents", {"id": "alice"}),
    ("POST", "/v1/agents", {"id": "bob"}),
    ("GET", "/v1/agents", None),
    ("POST", "/v1/messages", {"sender": "alice", "to": "bob", "body": "hi"}),
    ("GET", "/v1/agents/bob/inbox", None),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/events", None),
]

ROUND = r"""
import json, socket, sys, tempfile, threading, time
from pathlib import Path
import httpx, uvicorn
from relaybus import Relay
from relaybus.server.app import create_app
from relaybus.service import Service
from relaybus.settings import Settings
from relaybus.store import open_store

requests = json.loads(sys.argv[1])
cpu = time.process_time
folder = Path(tempfile.mkdtemp(prefix="rb-first-"))
Relay.open(dir=folder / ".relay").close()  # migrate before timing
settings = Settings(dir=folder / ".relay", sweep_interval=0.0, prune_interval=0.0)
store = open_store(settings)
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
start = cpu()
app = create_app(Service(store), settings)
built = cpu() - start
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.01)
out = {"app": built * 1000}
with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
    for n, (method, path, body) in enumerate(requests):
        for call in ("first", "second"):
            if body is not None and "id" in body and call == "second":
                body = {**body, "id": body["id"] + "2"}
            t = cpu()
            answer = client.request(method, path, json=body)
            out[f"{n} {call}"] = (cpu() - t) * 1000
            assert answer.status_code < 400, (path, answer.status_code, answer.text)
server.should_exit = True
thread.join()
store.close()
print(json.dumps(out))
"""


def one_round(python: str, cwd: Path) -> dict[str, float]:
    done = subprocess.run(
        [python, "-c", ROUND, json.dumps(REQUESTS)],
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per checkout")
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    checkouts = {"now": here}
    if args.before is not None:
        checkouts = {"before": args.before.resolve(), **checkouts}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for n in range(args.rounds):
        for name, root in checkouts.items():
            rounds[name].append(one_round(str(root / ".venv" / "bin" / "python"), root))
        print(f"round {n + 1}/{args.rounds}", file=sys.stderr)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    names = list(checkouts)
    print(f"ms of CPU, medians of {args.rounds} fresh processes each")
    print(f"{'':32}" + "".join(f"{n + ' 1st':>12}{n + ' 2nd':>12}" for n in names))
    print(f"{'create_app':32}" + "".join(f"{median(n, 'app'):12.1f}{'':>12}" for n in names))
    for i, (method, path, _) in enumerate(REQUESTS):
        cells = "".join(
            f"{median(n, f'{i} first'):12.1f}{median(n, f'{i} second'):12.1f}" for n in names
        )
        print(f"{method + ' ' + path:32}" + cells)
    totals = {
        n: statistics.median(sum(r[f"{i} first"] for i in range(len(REQUESTS))) for r in rounds[n])
        for n in names
    }
    print(f"{'first calls, total':32}" + "".join(f"{totals[n]:12.1f}{'':>12}" for n in names))


if __name__ == "__main__":
    main()
