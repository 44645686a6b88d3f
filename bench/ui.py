"""``relaybus ui --no-open``: wall time of the command with a cold and a warm relay.

Run: ``.venv/bin/python bench/ui.py`` (``--rounds N``, default 7; ``--quick``: 3).

Sets up a fresh git repository in a temporary folder with its relay (``relaybus
init``), then times ``relaybus ui --no-open`` as a whole process (the venv's console
script, the warm relay on) in three states, in interleaved rounds:

- ``cold``: no warm relay runs: the command starts one (a detached process: its start
  is in the wall time, not in the command's CPU), which opens the loopback listener;
- ``warm, first``: the warm relay runs (``relaybus daemon start``, untimed) but has no
  listener yet: the command asks it to open one;
- ``warm``: the relay runs and listens already: the command gets the same address.

and, for scale, ``python -c pass`` (the floor) and ``relaybus agents`` through the same
warm relay (a hot command). Each round stops the relay (``relaybus daemon
stop``: by its pid) before the cold run; the first round is a warm-up, not counted.
Prints the medians of wall time and of the command's CPU time (user + system, from
``os.wait4``), in ms, with the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("python -c pass", "ui (cold)", "ui (warm, first)", "ui (warm)", "agents (warm)")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """``(wall ms, CPU ms)`` of one process; raises when it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.decode(errors='replace')}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def quiet(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    relaybus = str(Path(sys.executable).with_name("relaybus"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    samples: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        (project / ".git").mkdir(parents=True)
        quiet([relaybus, "init"], env, project)
        ui = [relaybus, "ui", "--no-open"]
        try:
            for number in range(rounds + 1):
                results = {"python -c pass": timed([sys.executable, "-c", "pass"], env, project)}
                quiet([relaybus, "daemon", "stop"], env, project)
                results["ui (cold)"] = timed(ui, env, project)
                results["ui (warm)"] = timed(ui, env, project)
                results["agents (warm)"] = timed([relaybus, "agents"], env, project)
                quiet([relaybus, "daemon", "stop"], env, project)
                quiet([relaybus, "daemon", "start"], env, project)
                results["ui (warm, first)"] = timed(ui, env, project)
                if number:  # the first round warms the caches up
                    for case, sample in results.items():
                        samples[case].append(sample)
        finally:
            quiet([relaybus, "daemon", "stop"], env, project)
    print(f"relaybus ui --no-open, {rounds} rounds (load {load_before:.2f} -> "
          f"{os.getloadavg()[0]:.2f}); medians in ms")  # fmt: skip
    print(f"{'case':<20} {'wall':>8} {'cpu':>8}")
    for case in CASES:
        wall = statistics.median(s[0] for s in samples[case])
        cpu = statistics.median(s[1] for s in samples[case])
        print(f"{case:<20} {wall:8.1f} {cpu:8.1f}")


if __name__ == "__main__":
    main()
