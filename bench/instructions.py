"""Instructions per broadcast, counted by callgrind: the noise-free twin of bench/broadcast.py.

Run: ``.venv/bin/python bench/instructions.py [--before /work/before] [--count 20]``
(needs ``valgrind``, Debian's package of that name).

This machine's speed moves about 2x within a minute (docs/benchmarks.md), so a change
of a tenth of a broadcast's time hides in the timings of ``bench/broadcast.py``.
Valgrind's callgrind counts the instructions a process executes (``Ir``), which do
not depend on the host's load: two runs of the same code differ by well under 1 %.
Kernel work (system calls, the loopback socket, thread wake-ups) is not counted, nor
is time spent waiting, so this measures the work, and bench/broadcast.py the latency.

For each checkout and each path, two processes run under callgrind on fresh copies
of the same seeded store (1,000 agents, :func:`bench.broadcast.seed`): one sends two
warm-up messages (a broadcast, then a direct message: every statement compiled, every
serializer built), the other the same two and then ``--count`` broadcasts. The
difference divided by ``--count`` is one broadcast's instructions, printed whole and
by shared object (SQLite, the interpreter, libc, the JSON and pydantic extensions):

1. embedded: the SDK (``Relay.open``) in the process;
2. through the server: ``relaybus serve`` (every thread of it) answering ``POST
   /v1/messages``, background sweeps off (``RELAYBUS_SWEEP_INTERVAL=0``), so that
   nothing but the requests differs between the two runs.

The runs of a checkout go two at a time (instruction counts do not depend on sharing
the cores); each takes 30-90 s (a process under callgrind runs about 50x slower).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.broadcast import AGENTS, BODY, _post, clean_env, fresh_copy, seed

#: Seconds a process under callgrind may take to start, or to answer.
TIMEOUT = 600.0
#: Shared objects shown apart (by file name prefix); the rest is summed as "other".
SHOWN = ("libsqlite3", "libpython3", "libc.so", "_json", "_pydantic_core")
_LINE = re.compile(r"\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(.*)")


def callgrind(command: list[str], out: Path) -> list[str]:
    """``command`` prefixed to run under callgrind, writing ``out``."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]


def counted(out: Path) -> tuple[int, Counter[str]]:
    """The instructions a callgrind run executed: the total, and by shared object
    (:data:`SHOWN`, the rest as ``other``), from ``callgrind_annotate``."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total, by_object = 0, Counter[str]()
    for raw in text.splitlines():
        match = _LINE.match(raw)
        if match is None:
            continue
        value, name = int(match.group(1).replace(",", "")), match.group(2)
        if "PROGRAM TOTALS" in name:
            total = value
            continue
        found = re.search(r"\[([^\]]*)\]\s*$", name)
        obj = found.group(1).rsplit("/", 1)[-1] if found else "?"
        by_object[next((s for s in SHOWN if obj.startswith(s)), "other")] += value
    return total, by_object


def embedded_run(python: Path, relay_dir: Path, count: int, out: Path) -> None:
    """The SDK under callgrind: the warm-up sends and ``count`` broadcasts."""
    command = [str(python), __file__, "--embedded-worker", str(relay_dir), str(count)]
    subprocess.run(callgrind(command, out), check=True, env=_env(), capture_output=True)


def embedded_worker(relay_dir: Path, count: int) -> None:
    from relaybus import Relay

    with Relay.open(dir=relay_dir) as relay:
        caster = relay.register("caster")
        caster.send("broadcast", BODY)
        caster.send("agent-0001", BODY)
        for _ in range(count):
            if len(caster.send("broadcast", BODY).recipients) != AGENTS:
                raise RuntimeError("a broadcast missed agents")


def server_run(python: Path, relay_dir: Path, count: int, out: Path) -> None:
    """``relaybus serve`` under callgrind: the warm-up sends and ``count`` broadcasts
    over one keep-alive connection, then SIGINT (callgrind writes ``out`` at exit)."""
    from bench.common import BlockingConnection, announced_server

    env = _env()
    env["RELAYBUS_DIR"] = str(relay_dir)
    env["RELAYBUS_SWEEP_INTERVAL"] = "0"
    command = callgrind([str(python), "-m", "relaybus", "serve", "--port", "0"], out)
    with announced_server(command, relay_dir.parent, env, TIMEOUT) as (url, _pid):
        conn = BlockingConnection(url, TIMEOUT)
        try:
            status, answer = _post(conn, "/v1/agents", json.dumps({"id": "caster"}), {})
            if status != 201:
                raise RuntimeError(f"register: {status} {answer[:200]!r}")
            headers = {"Authorization": f"Bearer {json.loads(answer)['token']}"}
            for to in ["broadcast", "agent-0001"] + ["broadcast"] * count:
                content = json.dumps({"sender": "caster", "to": to, "body": BODY})
                status, answer = _post(conn, "/v1/messages", content, headers)
                if status != 201:
                    raise RuntimeError(f"send: {status} {answer[:200]!r}")
        finally:
            conn.close()


def _env() -> dict[str, str]:
    env = clean_env()
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run
    return env


def per_broadcast(
    python: Path, db: Path, root: Path, path: str, count: int
) -> tuple[float, dict[str, float]]:
    """One broadcast's instructions on ``path`` (``embedded`` or ``server``): the
    total and by shared object, from a run with ``count`` broadcasts and one without."""
    run = embedded_run if path == "embedded" else server_run

    def one(n: int) -> tuple[int, Counter[str]]:
        folder = root / f"{path}-{n}"
        relay_dir = fresh_copy(db, folder)
        out = folder / "callgrind.out"
        run(python, relay_dir, n, out)
        found = counted(out)
        shutil.rmtree(folder)
        return found

    with ThreadPoolExecutor(2) as pool:
        (base, base_by), (full, full_by) = pool.map(one, [0, count])
    return (full - base) / count, {k: (full_by[k] - base_by[k]) / count for k in full_by}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    parser.add_argument("--count", type=int, default=20, help="broadcasts counted per run")
    parser.add_argument("--paths", nargs="*", default=["embedded", "server"])
    parser.add_argument("--embedded-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embedded_worker:
        embedded_worker(Path(args.embedded_worker[0]), int(args.embedded_worker[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    here = Path(__file__).resolve().parents[1]
    checkouts = {"after": here}
    if args.before:
        checkouts = {"before": args.before.resolve(), "after": here}
    print(f"instructions per broadcast to {AGENTS} agents (callgrind Ir, millions)")
    with tempfile.TemporaryDirectory(prefix="relaybus-instructions-") as tmp:
        root = Path(tmp)
        for path in args.paths:
            print(f"\n{path}:")
            for name, checkout in checkouts.items():
                db = seed(root / f"seed-{name}", checkout)
                python = checkout / ".venv" / "bin" / "python"
                total, by_object = per_broadcast(python, db, root / name, path, args.count)
                parts = "  ".join(
                    f"{k} {by_object.get(k, 0.0) / 1e6:.2f}" for k in (*SHOWN, "other")
                )
                print(f"  {name:<7} {total / 1e6:7.2f} M   ({parts})")
                shutil.rmtree(root / f"seed-{name}")


if __name__ == "__main__":
    main()
