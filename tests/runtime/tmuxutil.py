"""Helpers for the tmux adapter tests: a tmux server of the test's own on a private
socket (killed at teardown), a program for its panes, event-driven waits on pane
output, and ``relaybus`` subprocesses in that environment.

Test modules take the fixtures with ``from tests.runtime.tmuxutil import box_fixture as
box_fixture`` and so on.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.models import DeliveryState, Message, Priority
from relaybus.runtime.tmux import ControlClient, Pane, TmuxServer
from tests.support.env import clean_environ

TMUX = shutil.which("tmux")

#: Seconds before a wait calls something hung: far above any real delay.
HUNG = 30.0
#: The quiet window the adapter runs with here, seconds.
QUIET = "0.3"

#: The program in the test panes. ``line`` mode: a line reader with a prompt that
#: logs every input as ``IN|<early>|<json>``, where early = 1 when the input came
#: while it was holding; ``hold`` (anywhere in a line) prints a tick every 50 ms
#: until the file ``release`` exists (busy); ``rest`` prints ``resting`` and then
#: nothing (no prompt either) for 1.5 s, five quiet windows. ``raw``
#: mode: records every byte it reads to ``raw.log`` and shows the running count
#: as ``bytes=N``; ``raw paste`` first turns bracketed paste on.
PROGRAM = r"""
import json, os, select, sys, time, tty

def out(text, end="\n"):
    sys.stdout.write(text + end)
    sys.stdout.flush()

def pending():
    return bool(select.select([sys.stdin], [], [], 0)[0])

def hold(ticking):
    early = False
    tick = 0
    while not os.path.exists("release"):
        early = early or pending()
        if ticking:
            tick += 1
            out(f"tick {tick}")
        time.sleep(0.05)
    early = early or pending()
    os.remove("release")
    out("released")
    return early

def line_mode():
    out("ready")
    early = False
    while True:
        out("> ", end="")
        line = sys.stdin.readline()
        if not line:
            return
        out(f"IN|{int(early)}|{json.dumps(line.rstrip(chr(10)))}")
        early = False
        words = line.split()
        if "hold" in words:
            early = hold(ticking=True)
        elif "rest" in words:
            out("resting")
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                early = early or pending()
                time.sleep(0.05)

def raw_mode(paste):
    tty.setraw(0)
    if paste:
        out("\x1b[?2004h", end="")
    seen = 0
    with open("raw.log", "wb", buffering=0) as log:
        out("ready", end="\r\n")
        while True:
            data = os.read(0, 4096)
            if not data:
                return
            log.write(data)
            seen += len(data)
            out(f"bytes={seen}", end="\r\n")

if sys.argv[1] == "line":
    line_mode()
else:
    raw_mode(len(sys.argv) > 2)
"""


# -- the private tmux server ---------------------------------------------------


@dataclass
class Box:
    """A private tmux server (socket in a short temporary folder), the program in
    its panes, and the environment for ``relaybus`` subprocesses."""

    socket: Path
    workdir: Path
    env: dict[str, str]
    server: TmuxServer

    def tmux(self, *args: str) -> str:
        """Run a tmux command on this server; its stdout."""
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            encoding="utf-8",
            timeout=HUNG,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def new_pane(self, mode: str = "line") -> Pane:
        """A new window running the test program in ``mode``; its pane."""
        command = f"exec {shlex.quote(sys.executable)} program.py {mode}"
        pane_id = self.tmux(
            "new-window", "-d", "-P", "-F", "#{pane_id}", "-t", "work:", "-c", str(self.workdir),
            command,
        ).strip()  # fmt: skip
        return self.server.pane(pane_id)

    def release(self) -> None:
        """Let a holding program go on."""
        (self.workdir / "release").write_text("go", encoding="utf-8")


@pytest.fixture(name="box")
def box_fixture(tmp_path: Path) -> Iterator[Box]:
    """A tmux server on a private socket with one session, ``work``; killed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="rbtmux"))  # a socket path must stay short
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "program.py").write_text(PROGRAM, encoding="utf-8")
    env = clean_environ("TMUX")
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        SHELL="/bin/sh",
        TMUX_TMPDIR=str(folder),
        RELAYBUS_DIR=str(tmp_path / ".relay"),
    )
    socket = folder / "s"
    assert TMUX is not None
    subprocess.run(
        [TMUX, "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", "work",
         "-x", "120", "-y", "40", "-c", str(workdir), "cat"],
        env=env, check=True, timeout=HUNG,
    )  # fmt: skip
    try:
        yield Box(socket, workdir, env, TmuxServer.choose(socket_path=str(socket)))
    finally:
        subprocess.run(
            [TMUX, "-S", str(socket), "kill-server"], env=env, capture_output=True, timeout=HUNG
        )
        shutil.rmtree(folder, ignore_errors=True)


class Watch:
    """Pane output as events: :meth:`until` re-reads the screen each time the pane
    prints, until a condition holds (or fails the test after :data:`HUNG` seconds)."""

    def __init__(self, box: Box, pane: Pane) -> None:
        self.box = box
        self.pane = pane
        self._cond = threading.Condition()
        self._outputs = 0
        self.control = ControlClient(
            box.server, pane.session_id, on_output=self._seen, watch=[pane.id]
        ).start()

    def _moved(self, count: int) -> bool:
        return self._outputs != count

    def _seen(self, pane_id: str, data: bytes) -> None:
        with self._cond:
            self._outputs += 1
            self._cond.notify_all()

    def screen(self) -> list[str]:
        """The pane's lines (scrollback included), blank bottom dropped."""
        return self.box.server.capture(self.pane.id, history=500)

    def until(self, check: Callable[[list[str]], bool], what: str) -> list[str]:
        """The screen, once ``check(screen)`` holds."""
        deadline = time.monotonic() + HUNG
        while True:
            with self._cond:
                seen = self._outputs
            lines = self.screen()
            if check(lines):
                return lines
            with self._cond:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait_for(partial(self._moved, seen), left):
                    pytest.fail(f"the pane never showed {what}; screen:\n" + "\n".join(lines))

    def close(self) -> None:
        self.control.close()


@pytest.fixture(name="watch")
def watch_fixture(box: Box) -> Iterator[Callable[[Pane], Watch]]:
    """Watches on panes of ``box``, closed at the end."""
    made: list[Watch] = []

    def make(pane: Pane) -> Watch:
        made.append(Watch(box, pane))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture(name="relay")
def relay_fixture(tmp_path: Path) -> Iterator[Relay]:
    """The relay of ``box``'s environment, with bob (the sender) and alice registered."""
    with Relay.open(dir=tmp_path / ".relay") as opened:
        opened.register("bob")
        opened.register("alice")
        yield opened


@dataclass
class Run:
    """A finished ``relaybus`` process."""

    code: int
    out: str
    err: str


def relaybus(box: Box, *args: str) -> Run:
    """Run ``relaybus ARGS`` to completion in ``box``'s environment."""
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", *args],
        env=box.env,
        cwd=box.workdir,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(name="attach")
def attach_fixture(box: Box) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``relaybus tmux attach PANE --name alice --quiet 0.3 -S SOCKET ARGS``;
    stops what is still running at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(pane: Pane, *args: str) -> subprocess.Popen[str]:
        command = ["tmux", "attach", pane.id, "--name", "alice", "--quiet", QUIET]
        proc = subprocess.Popen(
            [sys.executable, "-m", "relaybus", *command, "-S", str(box.socket), *args],
            env=box.env,
            cwd=box.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        _, err = proc.communicate(timeout=HUNG)
        print(f"relaybus tmux attach -> {proc.returncode}, stderr:\n{err}")  # shown on failure


def inputs(screen: list[str]) -> list[tuple[bool, str]]:
    """The inputs the line program logged: (arrived while holding, text)."""
    found = []
    for line in screen:
        if "IN|" in line:  # after a prompt when the input was typed ahead
            _, early, text = line[line.index("IN|") :].split("|", 2)
            found.append((early == "1", json.loads(text)))
    return found


def bodies(screen: list[str]) -> list[str]:
    """The message bodies among the logged inputs, in arrival order."""
    return [text.split("] ", 1)[1].split(" (reply:")[0] for _, text in inputs(screen)]


def shows(text: str, *, times: int | None = None) -> Callable[[list[str]], bool]:
    """A screen check: a line is ``text`` (exactly ``times`` lines, if given)."""
    if times is None:
        return lambda screen: text in screen
    return lambda screen: screen.count(text) == times


def send(relay: Relay, body: str, priority: Priority = Priority.NORMAL) -> Message:
    """bob sends alice ``body``."""
    return relay.agent("bob").send("alice", body, priority=priority)


def state(relay: Relay, message: Message, until: str | None = None) -> DeliveryState:
    (receipt,) = relay.deliveries(message.id, until=until, timeout=HUNG)
    return receipt.state
