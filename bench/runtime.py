"""``relaybus run``: how soon a message is typed once the program went quiet, and
what the runner costs while nothing happens.

Starts the real runner (``python -m relaybus run``) in a pseudo-terminal of its
own, around the test REPL (``tests/integrations/repl.py``), on a fresh relay.
``--runs + 1`` messages are sent at once; the runner types one per idle moment.
The REPL reports for each input the time from the end of its last output (its
prompt) to the input's arrival, on the system-wide monotonic clock, so

    injection latency = that time - the quiet window

covers the runner seeing the output, the quiet window's deadline firing, typing
the message (with the terminal's echo) and the REPL reading it. The first message
(typed at start-up) is left out.

Then the runner sits idle (the REPL at its prompt, no mail) for ``--idle-seconds``;
its CPU time (all its threads, via psutil) over that span is the idle figure.

Usage::

    .venv/bin/python bench/runtime.py [--runs 20] [--quiet 0.75] [--idle-seconds 10]

Prints p50/p99 injection latency (ms) and the idle CPU use (target < 1 % of a core).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from ptyprocess import PtyProcess

from relaybus import Relay

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile  # noqa: E402

REPL = Path(__file__).resolve().parent.parent / "tests" / "integrations" / "repl.py"
IN_LINE = re.compile(r"IN\|(\d+)\|(\d)\|([\d.]+)\|")
#: Longest any step may take before the benchmark gives up, seconds.
HUNG = 60.0


class Screen:
    """The runner's output as the test terminal sees it."""

    def __init__(self, proc: PtyProcess) -> None:
        self.proc = proc
        self.text = ""

    def until(self, done: re.Pattern[str], count: int = 1) -> None:
        """Read until ``done`` matched ``count`` times."""
        deadline = time.monotonic() + HUNG
        while len(done.findall(self.text)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"gave up waiting for {done.pattern!r}:\n{self.text[-2000:]}")
            ready, _, _ = select.select([self.proc.fd], [], [], left)
            if ready:
                self.text += os.read(self.proc.fd, 65536).decode("utf-8", "replace")


def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="rb-bench-run-", dir="/tmp"))
    proc: PtyProcess | None = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
        env.update(
            RELAYBUS_DIR=str(work / "relay"),
            HOME=str(work / "home"),
            XDG_STATE_HOME=str(work / "state"),
            TERM="xterm",
        )
        argv = [sys.executable, "-m", "relaybus", "run", "--name", "bench"]
        argv += ["--quiet", str(args.quiet), "--", sys.executable, str(REPL)]
        proc = PtyProcess.spawn(argv, env=env, cwd=str(work), dimensions=(40, 120))
        screen = Screen(proc)
        screen.until(re.compile(r"repl> "))
        with Relay.open(dir=work / "relay") as relay:
            alice = relay.register("bench-alice", pid=None)
            for n in range(args.runs + 1):
                alice.send("bench", f"message {n}")
            screen.until(IN_LINE, args.runs + 1)
            waited = [float(m.group(3)) for m in IN_LINE.finditer(screen.text)][1:]
            latency = [w - args.quiet * 1000 for w in waited]
            # the last message is read at the next idle moment; then nothing happens
            last = alice.send("bench", "last")
            screen.until(IN_LINE, args.runs + 2)
            relay.deliveries(last.id, until="read", timeout=HUNG)
            runner = psutil.Process(proc.pid)
            before = runner.cpu_times()
            start = time.monotonic()
            time.sleep(args.idle_seconds)  # measuring idleness: nothing to wait for
            after = runner.cpu_times()
            elapsed = time.monotonic() - start
        used = (after.user - before.user) + (after.system - before.system)
        idle_pct = 100 * used / elapsed
        print(f"relaybus run: quiet window {args.quiet * 1000:.0f} ms, {args.runs} messages")
        rows = [
            (
                f"injection latency after the quiet window, p{q * 100:.0f}",
                f"{percentile(latency, q):.1f} ms",
                "",
            )
            for q in (0.5, 0.99)
        ]
        rows.append(
            (f"runner CPU while idle over {elapsed:.0f} s", f"{idle_pct:.2f} %", "< 1 % of a core")
        )
        print(f"\n{'figure':48} {'value':>10}  target")
        for name, value, target in rows:
            print(f"{name:48} {value:>10}  {target}")
        proc.write(b"exit 0\r")
        screen.until(re.compile("exit 0"))
    finally:
        if proc is not None:
            if proc.isalive():
                proc.terminate(force=True)
            proc.close(force=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="messages timed (20)")
    parser.add_argument("--quiet", type=float, default=0.75, help="quiet window, s (0.75)")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle span measured, s (10)"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.quiet <= 0 or args.idle_seconds <= 0:
        parser.error("--runs, --quiet and --idle-seconds must be positive")
    bench(args)


if __name__ == "__main__":
    main()
