"""The test suite as CI runs it, timed: wall time and the CPU of every process it starts.

Run: ``.venv/bin/python bench/suite.py [--rev REV] [--workers N]``.

Clones the repository at ``REV`` (default ``HEAD``) into a temporary folder, sets it
up as the README says (``python3 -m venv .venv``, ``pip install uv``), and runs the
README's test command there (``uv run --frozen pytest -n N --dist loadgroup``) with
``CI=true``. On Linux, as root, the run is put in a cgroup of its own (cgroup v1
``cpuacct``) first, so its CPU figure counts every process the suite starts, the
detached warm relays and the PostgreSQL server included; elsewhere the figure is the
CPU of the processes pytest waited for (``getrusage(RUSAGE_CHILDREN)``), which leaves
those out. Set ``RELAYBUS_TEST_CLAUDE`` to run the Claude Code tests, as ``.ci/run``
does. Prints pytest's summary line, the wall time of the test command and its CPU.

pytest's temporary folders go to a fresh root of their own (``PYTEST_DEBUG_TEMPROOT``,
a short folder in ``/tmp``), as on a fresh CI machine: at the end of a session pytest
deletes the numbered ``pytest-of-USER`` folders past the newest three, and deleting one
left by an earlier full run (about 7,000 files) took 27 s of one session's wall time
here (cProfile, machine loaded), inside the test phase. ``TMPDIR`` stays as it is: a
longer one moves the tests' sockets to their fallback folders (see
``relaybus.client.warm.socket_path``), which a test's own environment may not share.
Runs on this machine varied by about 30 % with the host's load from outside (a fixed
pure-Python loop timed around each run did not follow it): compare commits with runs
taken in turn (``--rev``), not with figures from another hour.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/cpuacct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the commit to clone (HEAD)")
    parser.add_argument("--workers", type=int, default=4, help="pytest-xdist workers (4)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="relaybus-suite-") as scratch:
        clone = Path(scratch) / "relaybus"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", args.rev], check=True)
        subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=clone, check=True)
        subprocess.run([".venv/bin/pip", "install", "-q", "uv"], cwd=clone, check=True)
        subprocess.run([".venv/bin/uv", "sync", "--frozen", "-q"], cwd=clone, check=True)
        group = _cgroup(Path(scratch).name)
        command = [".venv/bin/uv", "run", "--frozen", "pytest", "-n", str(args.workers)]
        command += ["--dist", "loadgroup", "-q"]
        temproot = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # short: socket paths
        env = {**os.environ, "CI": "true", "PYTEST_DEBUG_TEMPROOT": temproot}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run(
            command,
            cwd=clone,
            env=env,
            capture_output=True,
            encoding="utf-8",
            check=False,
            preexec_fn=(lambda: _join(group)) if group else None,
        )
        wall = time.monotonic() - start
        shutil.rmtree(temproot, ignore_errors=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = [line for line in done.stdout.splitlines() if " in " in line and "passed" in line]
        print(summary[-1] if summary else done.stdout[-2000:])
        print(f"test command: {wall:.1f} s wall, exit {done.returncode}")
        if group is not None:
            cpu = int((group / "cpuacct.usage").read_text(encoding="utf-8")) / 1e9
            print(f"CPU of every process in the run (cgroup): {cpu:.0f} s")
            left = (group / "cgroup.procs").read_text(encoding="utf-8").split()
            if left:  # the tests should have stopped everything they started
                print(f"still running after the suite: pids {' '.join(left)}")
            else:
                group.rmdir()
        else:
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            print(f"CPU of the processes pytest waited for: {cpu:.0f} s (no cgroup here)")


def _cgroup(name: str) -> Path | None:
    """A new cpuacct cgroup, or None where one cannot be made."""
    try:
        group = CGROUPS / name
        group.mkdir()
        return group
    except OSError:
        return None


def _join(group: Path) -> None:
    (group / "cgroup.procs").write_text(str(os.getpid()), encoding="utf-8")


if __name__ == "__main__":
    main()
