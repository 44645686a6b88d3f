"""``relaybus run`` and ``relaybus tmux attach``: how soon a message is typed once
the program went quiet, and what the runner / adapter costs while nothing happens.

Both run the test REPL (``tests/runtime/repl.py``) on a fresh relay of
their own, with the same measurement (:func:`measure`):

- ``relaybus run``: the real runner (``python -m relaybus run``) in a
  pseudo-terminal of its own, around the REPL; its output read from the PTY.
- ``relaybus tmux attach``: the REPL in a pane of a private tmux server (own
  socket in a temporary folder, ``-f /dev/null``, killed at the end), the real
  adapter (``python -m relaybus tmux attach PANE --name bench``) bound to it;
  the pane's output read by a control-mode client of the benchmark's own.

``--runs + 1`` messages are sent at once; the runner types one per idle moment.
The REPL reports for each input the time from the end of its last output (its
prompt) to the input's arrival, on the system-wide monotonic clock, so

    injection latency = that time - the quiet window

covers the runner seeing the output, the quiet window's deadline firing, typing
the message (with the terminal's echo) and the REPL reading it. The first message
(typed at start-up) is left out.

Then the runner sits idle (the REPL at its prompt, no mail) for ``--idle-seconds``;
the CPU time over that span is the idle figure: of the runner process (all its
threads, via psutil), and for tmux of the adapter process plus its children (the
``tmux -C`` control-mode client).

Usage::

    .venv/bin/python bench/runtime.py [--runs 20] [--quiet 0.75] [--idle-seconds 10]
        [--skip-tmux]

Prints p50/p99 injection latency (ms) and the idle CPU use (target < 1 % of a core)
for each; the tmux rows are skipped with a note when tmux is not on ``PATH``.
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
from ptyprocess import PtyProcess

from relaybus import Relay
from relaybus.runtime.tmux import ControlClient, TmuxServer

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile  # noqa: E402

REPL = Path(__file__).resolve().parent.parent / "tests" / "runtime" / "repl.py"
IN_LINE = re.compile(r"IN\|(\d+)\|(\d)\|([\d.]+)\|")
PROMPT = re.compile(r"repl> ")
#: Longest any step may take (or go without progress) before the benchmark gives
#: up, seconds: above the tmux adapter's 60 s safety-net re-check, so a message
#: held that long shows in the figures rather than ending the run.
HUNG = 90.0
#: How long a process that was asked to end may take before it is killed, seconds.
GRACE = 10.0


class Output:
    """What a program printed so far (``text``), read as it comes.

    ``name`` says whose output it is in errors. Subclasses implement
    :meth:`_read`: take in what arrived, waiting for some up to a timeout.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _take(self, data: bytes) -> None:
        self.text += self._decoder.decode(data)

    def _read(self, timeout: float) -> None:
        raise NotImplementedError

    def until(self, done: re.Pattern[str], count: int = 1) -> str:
        """Read until ``done`` matched ``count`` times; the text so far.

        Raises:
            SystemExit: no further match for :data:`HUNG` seconds (with the end
                of the text).
        """
        seen = len(done.findall(self.text))
        deadline = time.monotonic() + HUNG
        while seen < count:
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.text[-2000:]
                raise SystemExit(f"{self.name}: gave up waiting for {done.pattern!r}:\n{tail}")
            self._read(left)
            if (now := len(done.findall(self.text))) > seen:
                seen, deadline = now, time.monotonic() + HUNG
        return self.text


class PtyOutput(Output):
    """The runner's output as the test terminal (the PTY's parent side) sees it."""

    def __init__(self, proc: PtyProcess) -> None:
        super().__init__("relaybus run")
        self.proc = proc

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.proc.fd], [], [], timeout)
        if ready:
            self._take(os.read(self.proc.fd, 65536))


class PaneOutput(Output):
    """A tmux pane's output as a control-mode client sees it: pass :meth:`feed` as
    the client's ``on_output``."""

    def __init__(self) -> None:
        super().__init__("relaybus tmux attach")
        self._cond = threading.Condition()
        self._pending: list[bytes] = []

    def feed(self, pane_id: str, data: bytes) -> None:
        """Output ``data`` of pane ``pane_id`` arrived (called on the reader thread)."""
        with self._cond:
            self._pending.append(data)
            self._cond.notify_all()

    def _read(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._pending), timeout)
            data, self._pending = b"".join(self._pending), []
        self._take(data)


@dataclass(frozen=True)
class Figures:
    """One target's figures: ``latency_ms`` per timed message (after the quiet
    window), CPU use while idle in percent of one core over ``idle_s`` seconds."""

    latency_ms: list[float]
    idle_pct: float
    idle_s: float


def idle_cpu(procs: Sequence[psutil.Process], seconds: float) -> tuple[float, float]:
    """CPU time (user + system) of ``procs`` together over ``seconds`` of doing
    nothing: (percent of one core, elapsed seconds).

    Raises:
        SystemExit: one of them ended meanwhile.
    """

    def used() -> float:
        try:
            return sum(t.user + t.system for t in (p.cpu_times() for p in procs))
        except psutil.NoSuchProcess as exc:
            raise SystemExit(f"process {exc.pid} ended while measuring idle CPU") from None

    before = used()
    start = time.monotonic()
    time.sleep(seconds)  # measuring idleness: nothing to wait for
    after = used()
    elapsed = time.monotonic() - start
    return 100 * (after - before) / elapsed, elapsed


def measure(
    relay_dir: Path,
    output: Output,
    procs: Callable[[], list[psutil.Process]],
    args: argparse.Namespace,
) -> Figures:
    """Send agent ``bench`` (registered by the runner/adapter on the relay at
    ``relay_dir``) ``--runs + 1`` messages, read the REPL's reports of them from
    ``output``, wait until one more was read and then measure ``procs()`` idle.

    Raises:
        SystemExit: a step took over :data:`HUNG` seconds.
    """
    with Relay.open(dir=relay_dir) as relay:
        alice = relay.register("bench-alice", pid=None)
        for n in range(args.runs + 1):
            alice.send("bench", f"message {n}")
        text = output.until(IN_LINE, args.runs + 1)
        waited = [float(m.group(3)) for m in IN_LINE.finditer(text)][1 : args.runs + 1]
        # the last message is read at the next idle moment; then nothing happens
        last = alice.send("bench", "last")
        output.until(IN_LINE, args.runs + 2)
        relay.deliveries(last.id, until="read", timeout=HUNG)
        idle_pct, elapsed = idle_cpu(procs(), args.idle_seconds)
    return Figures([w - args.quiet * 1000 for w in waited], idle_pct, elapsed)


def rows(prefix: str, figures: Figures, idle: str) -> list[tuple[str, str, str]]:
    """The table rows of ``figures``: (figure, value, target); ``idle`` names
    what the idle CPU figure covers."""
    found = [
        (
            f"{prefix}injection latency after the quiet window, p{q * 100:.0f}",
            f"{percentile(figures.latency_ms, q):.1f} ms",
            "",
        )
        for q in (0.5, 0.99)
    ]
    label = f"{prefix}{idle} CPU while idle over {figures.idle_s:.0f} s"
    found.append((label, f"{figures.idle_pct:.2f} %", "< 1 % of a core"))
    return found


def environment(work: Path) -> dict[str, str]:
    """The environment of the processes started: no relaybus or tmux settings of
    the caller's, the relay, home and state folders under ``work``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYBUS_", "TMUX"))}
    env.update(
        RELAYBUS_DIR=str(work / "relay"),
        HOME=str(work / "home"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CONFIG_HOME=str(work / "config"),
        TERM="xterm",
    )
    return env


def end(proc: psutil.Process) -> None:
    """End ``proc`` (by pid) if it still runs: SIGTERM, SIGKILL after :data:`GRACE` s."""
    try:
        proc.terminate()
        proc.wait(GRACE)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(GRACE)


def bench_pty(args: argparse.Namespace) -> Figures:
    """``relaybus run`` around the REPL in a PTY; its figures."""
    work = Path(tempfile.mkdtemp(prefix="rb-bench-run-", dir="/tmp"))
    proc: PtyProcess | None = None
    try:
        argv = [sys.executable, "-m", "relaybus", "run", "--name", "bench"]
        argv += ["--quiet", str(args.quiet), "--", sys.executable, str(REPL)]
        env = environment(work)
        proc = PtyProcess.spawn(argv, env=env, cwd=str(work), dimensions=(40, 120))
        output = PtyOutput(proc)
        output.until(PROMPT)
        runner = psutil.Process(proc.pid)
        figures = measure(work / "relay", output, lambda: [runner], args)
        proc.write(b"exit 0\r")
        output.until(re.compile("exit 0"))
        return figures
    finally:
        if proc is not None:
            if proc.isalive():
                proc.terminate(force=True)
            proc.close(force=True)
        shutil.rmtree(work, ignore_errors=True)


def bench_tmux(args: argparse.Namespace, tmux: str) -> Figures:
    """``relaybus tmux attach`` on a pane of a private tmux server (binary ``tmux``)
    running the REPL; its figures. The server and every process started end here."""
    work = Path(tempfile.mkdtemp(prefix="rb-bench-tmux-", dir="/tmp"))
    socket = work / "tmux.sock"  # well under the 108 bytes a socket path may have
    env = environment(work)
    env.update(SHELL="/bin/sh", TMUX_TMPDIR=str(work))
    started: list[psutil.Process] = []  # tmux server, REPL, adapter's children
    watcher: ControlClient | None = None
    adapter: subprocess.Popen[str] | None = None
    try:
        pane = subprocess.run(
            [tmux, "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", "bench",
             "-x", "120", "-y", "40", "-c", str(work), "-P", "-F", "#{pane_id}", "cat"],
            env=env, capture_output=True, encoding="utf-8", timeout=HUNG, check=True,
        ).stdout.strip()  # fmt: skip
        server = TmuxServer.choose(socket_path=str(socket))
        started.append(psutil.Process(int(server.run("display-message", "-p", "#{pid}"))))
        # Watch the pane before the REPL starts in it, so no output is missed.
        output = PaneOutput()
        watcher = ControlClient(server, "bench", on_output=output.feed, watch=[pane]).start()
        repl = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(REPL))}"
        server.run("respawn-pane", "-k", "-t", pane, "-c", str(work), repl)
        output.until(PROMPT)
        started.append(
            psutil.Process(int(server.run("display-message", "-p", "-t", pane, "#{pane_pid}")))
        )
        argv = [sys.executable, "-m", "relaybus", "tmux", "attach", pane, "--name", "bench"]
        argv += ["--quiet", str(args.quiet), "-S", str(socket), "--json"]
        errors = work / "adapter.err"
        with errors.open("w", encoding="utf-8") as sink:
            adapter = subprocess.Popen(
                argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=sink, encoding="utf-8"
            )
        bound(adapter, errors)
        main = psutil.Process(adapter.pid)

        def procs() -> list[psutil.Process]:
            children = main.children(recursive=True)
            started.extend(children)
            if not any("-C" in child.cmdline() for child in children):
                raise SystemExit("the tmux adapter has no tmux control-mode client")
            return [main, *children]

        try:
            return measure(work / "relay", output, procs, args)
        except SystemExit as exc:
            code = adapter.poll()
            state = "is still running" if code is None else f"exited with {code}"
            log = errors.read_text(encoding="utf-8").strip()[-2000:] or "(empty)"
            raise SystemExit(f"{exc}\nrelaybus tmux attach {state}; its stderr:\n{log}") from None
    finally:
        if adapter is not None:
            try:
                started.extend(psutil.Process(adapter.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass  # ended already; its children are on the list if they were seen
            adapter.terminate()
            try:
                adapter.communicate(timeout=GRACE)
            except subprocess.TimeoutExpired:
                adapter.kill()
                adapter.communicate(timeout=GRACE)
        if watcher is not None:
            watcher.close()
        subprocess.run(
            [tmux, "-S", str(socket), "kill-server"],
            env=env, capture_output=True, timeout=HUNG, check=False,
        )  # fmt: skip
        for proc in started:
            end(proc)
        shutil.rmtree(work, ignore_errors=True)


def bound(adapter: subprocess.Popen[str], errors: Path) -> None:
    """Wait until the adapter printed its first JSON line (bound to the pane).

    Raises:
        SystemExit: it ended first (with its stderr) or took over :data:`HUNG` s.
    """
    assert adapter.stdout is not None
    ready, _, _ = select.select([adapter.stdout], [], [], HUNG)
    line = adapter.stdout.readline() if ready else ""
    if '"agent"' not in line:
        problem = errors.read_text(encoding="utf-8").strip() or "no output"
        raise SystemExit(f"relaybus tmux attach did not bind: {line.strip()} {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="messages timed (20)")
    parser.add_argument("--quiet", type=float, default=0.75, help="quiet window, s (0.75)")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle span measured, s (10)"
    )
    parser.add_argument(
        "--skip-tmux", action="store_true", help="measure relaybus run only, not the tmux adapter"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.quiet <= 0 or args.idle_seconds <= 0:
        parser.error("--runs, --quiet and --idle-seconds must be positive")
    table = rows("", bench_pty(args), "runner")
    tmux = shutil.which("tmux")
    note = ""
    if args.skip_tmux:
        note = "tmux adapter: skipped (--skip-tmux)"
    elif tmux is None:
        note = "tmux adapter: skipped, no tmux on PATH"
    else:
        table += rows("tmux: ", bench_tmux(args, tmux), "adapter + its tmux -C client,")
    print(
        f"relaybus run / tmux attach: quiet window {args.quiet * 1000:.0f} ms, "
        f"{args.runs} messages each"
    )
    if note:
        print(note)
    print(f"\n{'figure':62} {'value':>10}  target")
    for name, value, target in table:
        print(f"{name:62} {value:>10}  {target}")


if __name__ == "__main__":
    main()
