"""``relaybus run``: a real REPL (``repl.py``) under the real runner, in a real PTY.

The test is the runner's user: it starts ``python -m relaybus run ... -- python
repl.py`` in a pseudo-terminal of its own (ptyprocess), so the runner has a real
terminal to put in raw mode, reads what the runner shows, and types into it.
Messages are sent with the SDK on the same relay (a SQLite file in tmp_path).
Every check reads the REPL's own report of the input it got (``IN|n|early|...``
lines, see ``repl.py``); nothing sleeps: each step waits for output with a
deadline.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ptyprocess import PtyProcess

from relaybus import Relay
from relaybus.cli.terminal import INJECT_MODES, MESSAGE_FORMATS, QUIET_DEFAULT
from relaybus.identity import HOSTNAME, derive_agent_id
from relaybus.models import AgentStatus, DeliveryState, Message, Via
from relaybus.runtime import QUIET_SECONDS, InjectMode, MessageFormat, render
from tests.support.env import clean_environ
from tests.support.live import live_server

REPL = str(Path(__file__).with_name("repl.py"))
#: Seconds a step may take before the test calls it hung (far above a normal run).
HUNG = 30.0
#: The REPL's prompt line as the runner sees it (trailing blank removed). Every run
#: uses it, so "idle" never depends on how fast a loaded machine runs the REPL: a
#: REPL that is working (or crashing) shows no prompt.
PROMPT = "^repl>$"
#: The REPL's report of an input; after its prompt when the input was waiting already.
IN_LINE = re.compile(r"(?:^|repl> )IN\|(\d+)\|(\d)\|([\d.]+)\|(.*)$", re.M)


@dataclass(frozen=True)
class Received:
    """One input line the REPL reported."""

    early: bool  # arrived while it was busy
    text: str
    at: int  # offset in the output

    @property
    def message_id(self) -> int | None:
        found = re.match(r"\[relaybus #(\d+) ", self.text)
        return int(found.group(1)) if found else None


def received(text: str) -> list[Received]:
    """The REPL's ``IN|...`` reports in ``text``, in order."""
    return [
        Received(m.group(2) == "1", json.loads(m.group(4)), m.start())
        for m in IN_LINE.finditer(text)
    ]


class Term:
    """``relaybus run ARGS`` in a pseudo-terminal whose other side is the test."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        argv = [sys.executable, "-m", "relaybus", "run", *args]
        self.proc = PtyProcess.spawn(argv, env=env, cwd=str(cwd), dimensions=(30, 120))
        self.raw = b""
        self.pos = 0  # expect() searches from here
        self.code: int | None = None

    @property
    def text(self) -> str:
        """Everything shown so far, line ends as ``\\n``."""
        return self.raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False at the end of output."""
        ready, _, _ = select.select([self.proc.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.proc.fd, 65536)
        except OSError:
            return False
        self.raw += data
        return bool(data)

    def expect(self, pattern: str) -> re.Match[str]:
        """Wait for ``pattern`` (a regex, multi-line) in the output after the last match."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + HUNG
        while True:
            found = regex.search(self.text, self.pos)
            if found:
                self.pos = found.end()
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} after {HUNG} s in:\n{self.text}"
            assert self._read(left), f"the runner ended before {pattern!r}:\n{self.text}"

    def expect_message(self, message: Message) -> None:
        """Wait for the REPL's report of having got ``message``."""
        self.expect(rf"(?:^|repl> )IN\|.*\[relaybus #{message.id} ")

    def type(self, text: str) -> None:
        """Type ``text`` as the user."""
        self.proc.write(text.encode("utf-8"))

    def wait_exit(self) -> int:
        """Read to the end of the output; the runner's exit code."""
        deadline = time.monotonic() + HUNG
        while self._read(max(deadline - time.monotonic(), 0)):
            assert time.monotonic() < deadline, f"still running after {HUNG} s:\n{self.text}"
        self.proc.wait()
        status = self.proc.exitstatus
        assert status is not None, f"the runner was killed by {self.proc.signalstatus}"
        self.code = int(status)
        return self.code

    def close(self) -> None:
        if self.proc.isalive():
            self.proc.kill(9)
        self.proc.close(force=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The runner's environment: the relay and every home folder in tmp_path."""
    env = clean_environ()
    env.update(
        RELAYBUS_DIR=str(tmp_path / "relay"),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        TERM="xterm",
    )
    return env


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Relay.open(dir=tmp_path / "relay") as opened:
        yield opened


@pytest.fixture
def term(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[list[str]], Term]]:
    """``term(args)`` starts a runner; every one started is killed at the end if still there."""
    started: list[Term] = []

    def start(args: list[str]) -> Term:
        started.append(Term(args, env, tmp_path))
        return started[-1]

    yield start
    for t in started:
        t.close()


def repl(*extra: str) -> list[str]:
    return ["--", sys.executable, REPL, *extra]


def states(relay: Relay, *messages: Message) -> list[tuple[DeliveryState, Via | None]]:
    return [(d.state, d.via) for m in messages for d in relay.deliveries(m.id)]


def registered(relay: Relay, agent_id: str) -> None:
    """Wait until ``agent_id`` is registered (a headless runner shows nothing)."""
    deadline = time.monotonic() + HUNG
    since = 0
    while True:
        if any(a.id == agent_id for a in relay.agents()):
            return
        left = deadline - time.monotonic()
        assert left > 0, f"{agent_id} never registered"
        events = relay.wait_events(left, since=since, kinds=["agent.registered"])
        since = max([since, *(e.id for e in events)])


@pytest.mark.slow
def test_messages_arrive_once_in_order_and_only_when_the_program_is_idle(
    term: Callable[[list[str]], Term], relay: Relay
) -> None:
    alice = relay.register("alice", pid=None)
    t = term(["--name", "worker", "--quiet", "0.3", "--prompt", PROMPT, *repl()])
    t.expect(r"repl> ")
    assert not termios.tcgetattr(t.proc.fd)[3] & termios.ECHO  # the runner's terminal is raw
    first = alice.send("worker", "first, sent while the program is idle")
    t.expect_message(first)

    t.type("busy 1.5\r")
    t.expect("^BUSY-START")
    busy = [alice.send("worker", f"sent while busy, number {n}") for n in (2, 3)]
    t.expect_message(busy[-1])

    # bracketed paste: a multi-line message is one input
    t.type("paste on\r")
    t.expect(r'IN\|.*"paste on"')
    multi = alice.send("worker", "line one\nline two", subject="two lines")
    t.expect_message(multi)
    # read once the program went quiet at its prompt again
    [receipt] = relay.deliveries(multi.id, until="read", timeout=HUNG)
    assert receipt.state is DeliveryState.READ

    t.type("env RELAYBUS_AGENT\r")
    t.expect(r"^ENV\|RELAYBUS_AGENT\|worker$")
    t.type("env RELAYBUS_RUNTIME\r")  # Claude Code hooks inside leave the mail to the runner
    t.expect(r"^ENV\|RELAYBUS_RUNTIME\|pty$")
    t.proc.setwinsize(33, 101)
    t.type("size\r")
    t.expect(r"^SIZE\|101\|33$")
    t.type("exit 3\r")
    assert t.wait_exit() == 3
    assert termios.tcgetattr(t.proc.fd)[3] & termios.ECHO  # restored
    # the REPL left bracketed paste on; the runner turned it off in the user's terminal
    assert b"\x1b[?2004l" in t.raw[t.raw.rindex(b"exit 3") :]

    got = [r for r in received(t.text) if r.message_id is not None]
    sent = [first, *busy, multi]
    assert [r.message_id for r in got] == [m.id for m in sent]  # each once, in order
    assert not any(r.early for r in got)  # never typed while the REPL was busy
    busy_end = t.text.index("BUSY-END")
    assert all(r.at > busy_end for r in got[1:3])
    assert got[3].text == render(multi)
    assert "\n" in got[3].text
    assert states(relay, *sent) == [(DeliveryState.READ, Via.PTY)] * 4
    assert relay.get_agent("worker").status is AgentStatus.OFFLINE


#: Messages (raw) that make a Python REPL print ``TIMER`` 2 s (its clock) after it
#: first shows its continuation prompt "... ": the time at "... " is the REPL's.
CONTINUATION_CLOCK = (
    "import sys, threading, time\nshown = threading.Event()",
    "class Continued:\n    def __str__(self):\n        shown.set()\n        return '... '",
    "sys.ps2 = Continued(); threading.Thread(target=lambda: (shown.wait(), time.sleep(2), "
    "print('TIMER')), daemon=True).start()",
)


def status(env: dict[str, str], cwd: Path, message: Message) -> list[tuple[str, str, str]]:
    """``relaybus status MSG_ID --json`` as (agent, state, via) per recipient."""
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", "status", str(message.id), "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=True,
    )
    return [(d["agent_id"], d["state"], d["via"]) for d in json.loads(done.stdout)]


@pytest.mark.slow
def test_raw_format_runs_messages_in_a_python_repl_and_reads_them_back_at_its_prompt(
    term: Callable[[list[str]], Term], relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    alice = relay.register("alice", pid=None)
    args = ["--name", "py", "--format", "raw", "--quiet", "0.3", "--prompt", "^>>> "]
    t = term([*args, "--", sys.executable, "-q"])
    t.expect(r"^>>> ")
    answer = alice.send("py", "print(6*7)")
    t.expect(r"^42$")
    block = alice.send("py", "for i in range(2):\n    print('row', i * 10)")  # closed for it
    t.expect(r"^row 10$")
    relay.deliveries(block.id, until="read", timeout=HUNG)

    # The prompt gate: a message that leaves Python in a continuation line ("... ")
    # is typed but not read, and holds the next one back. The REPL's own clock
    # shows that the quiet window passed many times at "... " meanwhile.
    setup = [alice.send("py", body) for body in CONTINUATION_CLOCK]
    opened = alice.send("py", "if True:")
    held = alice.send("py", "print('after')")
    t.expect(r"TIMER$")  # printed after "... " by the REPL's thread
    relay.deliveries(setup[-1].id, until="read", timeout=HUNG)
    relay.deliveries(opened.id, until="delivered", timeout=HUNG)
    assert states(relay, *setup, opened, held) == [
        *[(DeliveryState.READ, Via.PTY)] * len(setup),
        (DeliveryState.DELIVERED, Via.PTY),
        (DeliveryState.QUEUED, None),
    ]
    assert status(env, tmp_path, opened) == [("py", "delivered", "pty")]
    t.type("    print('inside')\r\r")  # the user ends the block: back at ">>> "
    t.expect(r"^after$")
    relay.deliveries(held.id, until="read", timeout=HUNG)
    t.type("exit()\r")
    assert t.wait_exit() == 0

    text = t.text
    assert text.index("inside") < text.index("after")
    assert "relaybus #" not in text  # the bodies alone: no frame
    everything = [answer, block, *setup, opened, held]
    assert states(relay, *everything) == [(DeliveryState.READ, Via.PTY)] * len(everything)
    assert status(env, tmp_path, answer) == [("py", "read", "pty")]
    assert relay.get_agent("py").meta["format"] == "raw"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "priority"), [("wait", "urgent"), ("steer", "normal")], ids=["urgent", "steer"]
)
def test_urgent_messages_and_steer_mode_are_typed_while_the_program_is_busy(
    term: Callable[[list[str]], Term], relay: Relay, mode: str, priority: str
) -> None:
    alice = relay.register("alice", pid=None)
    t = term(
        ["--name", "worker", "--inject", mode, "--prompt", PROMPT, *repl("--stop-busy-on-input")]
    )
    t.expect(r"repl> ")
    t.type("busy 60\r")
    t.expect("^BUSY-START")
    message = alice.send("worker", "stop what you are doing", priority=priority)
    t.expect("^EARLY")
    t.expect_message(message)
    # read at the program's next idle moment
    [receipt] = relay.deliveries(message.id, until="read", timeout=HUNG)
    assert (receipt.state, receipt.via) == (DeliveryState.READ, Via.PTY)
    t.type("exit 0\r")
    assert t.wait_exit() == 0
    [got] = [r for r in received(t.text) if r.message_id == message.id]
    assert got.early


@pytest.mark.slow
def test_a_crashed_program_restarts_and_gets_again_what_it_had_not_read(
    term: Callable[[list[str]], Term], relay: Relay, tmp_path: Path
) -> None:
    alice = relay.register("alice", pid=None)
    args = ["--name", "worker", "--quiet", "0.3", "--prompt", PROMPT]
    t = term(
        [*args, "--restart", "on-failure", "--max-restarts", "2", *repl("--state", str(tmp_path))]
    )
    t.expect(r"repl> ")
    sent = [alice.send("worker", body) for body in ("one", "two CRASH", "three")]
    t.expect("^CRASHING")
    t.expect("restarting")
    t.expect_message(sent[2])
    relay.deliveries(sent[2].id, until="read", timeout=HUNG)
    t.type("exit 0\r")
    assert t.wait_exit() == 0

    runs = t.text.split("REPL-START")[1:]
    assert len(runs) == 2
    ids = [[r.message_id for r in received(run) if r.message_id] for run in runs]
    assert ids == [[sent[0].id, sent[1].id], [sent[1].id, sent[2].id]]
    assert states(relay, *sent) == [(DeliveryState.READ, Via.PTY)] * 3


def test_a_stop_signal_reaches_the_program_and_is_not_a_crash_to_restart(
    term: Callable[[list[str]], Term], relay: Relay
) -> None:
    t = term(["--name", "worker", "--restart", "on-failure", *repl()])
    t.expect(r"repl> ")
    os.kill(t.proc.pid, signal.SIGTERM)
    assert t.wait_exit() == 128 + signal.SIGTERM
    assert t.text.count("REPL-START") == 1
    assert termios.tcgetattr(t.proc.fd)[3] & termios.ECHO
    assert relay.get_agent("worker").status is AgentStatus.OFFLINE


def headless(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "relaybus", "run", "--headless", *args]
    return subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=HUNG)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


@pytest.mark.parametrize(("body", "code"), [("EXIT 7", 7), ("SIGNAL 9", 137)])
def test_headless_run_logs_the_output_and_exits_with_the_program_s_code(
    env: dict[str, str], relay: Relay, tmp_path: Path, body: str, code: int
) -> None:
    log = tmp_path / "logs" / "worker.log"
    proc = headless(
        env,
        tmp_path,
        "--name",
        "worker",
        "--quiet",
        "0.2",
        "--prompt",
        PROMPT,
        "--log",
        str(log),
        *repl(),
    )
    registered(relay, "worker")
    alice = relay.register("alice", pid=None)
    message = alice.send("worker", body)
    assert finish(proc)[0] == code
    text = log.read_text(encoding="utf-8")
    assert "REPL-START" in text
    [got] = received(text.replace("\r", ""))
    assert got.message_id == message.id
    # typed, and the program ended before its next idle moment: delivered, not read
    assert states(relay, message) == [(DeliveryState.DELIVERED, Via.PTY)]
    assert relay.get_agent("worker").status is AgentStatus.OFFLINE


def test_headless_run_logs_under_the_state_folder_by_default_and_prints_json(
    env: dict[str, str], relay: Relay, tmp_path: Path
) -> None:
    proc = headless(
        env, tmp_path, "--json", "--name", "ci", "--quiet", "0.2", "--prompt", PROMPT, *repl()
    )
    registered(relay, "ci")
    relay.register("alice", pid=None).send("ci", "EXIT 0")
    code, out, _ = finish(proc)
    assert code == 0
    log = tmp_path / "state" / "relaybus" / "runs" / "ci.log"
    assert json.loads(out) == {
        "agent": "ci",
        "exit_code": 0,
        "restarts": 0,
        "unread": 1,  # the EXIT message: typed, never read (no idle moment after it)
        "log": str(log),
    }
    assert "REPL-START" in log.read_text(encoding="utf-8")


@pytest.mark.slow
def test_messages_a_program_did_not_read_are_typed_by_the_next_run(
    env: dict[str, str], relay: Relay, tmp_path: Path
) -> None:
    args = [
        "--name",
        "worker",
        "--quiet",
        "0.2",
        "--prompt",
        PROMPT,
        *repl("--state", str(tmp_path)),
    ]
    first = headless(env, tmp_path, "--log", str(tmp_path / "first.log"), *args)
    registered(relay, "worker")
    alice = relay.register("alice", pid=None)
    crash, later = alice.send("worker", "CRASH"), alice.send("worker", "later")
    assert finish(first)[0] == 5  # no restart policy: the crash ends the run
    assert states(relay, crash, later) == [
        (DeliveryState.DELIVERED, Via.PTY),
        (DeliveryState.QUEUED, None),
    ]

    second = headless(env, tmp_path, "--log", str(tmp_path / "second.log"), *args)
    deadline = time.monotonic() + HUNG
    # wait for the second run to read both (the REPL survives CRASH the second time)
    while states(relay, crash, later) != [(DeliveryState.READ, Via.PTY)] * 2:
        assert time.monotonic() < deadline, states(relay, crash, later)
        relay.deliveries(later.id, until="read", timeout=max(deadline - time.monotonic(), 0))
    bye = alice.send("worker", "EXIT 0")
    assert finish(second)[0] == 0
    text = (tmp_path / "second.log").read_text(encoding="utf-8").replace("\r", "")
    assert [r.message_id for r in received(text)] == [crash.id, later.id, bye.id]


@pytest.mark.slow
def test_a_runner_against_a_relay_server_types_messages_sent_there(
    env: dict[str, str], tmp_path: Path
) -> None:
    with live_server(tmp_path / "server") as srv:
        server_env = {k: v for k, v in env.items() if k != "RELAYBUS_DIR"}
        server_env["RELAYBUS_URL"] = srv.url
        log = tmp_path / "worker.log"
        proc = headless(
            server_env,
            tmp_path,
            "--name",
            "worker",
            "--quiet",
            "0.2",
            "--prompt",
            PROMPT,
            "--log",
            str(log),
            *repl(),
        )
        relay = Relay.embedded(srv.service)
        registered(relay, "worker")
        message = relay.register("alice", pid=None).send("worker", "EXIT 4")
        assert finish(proc)[0] == 4
        [got] = received(log.read_text(encoding="utf-8").replace("\r", ""))
        assert got.message_id == message.id
        assert states(relay, message) == [(DeliveryState.DELIVERED, Via.PTY)]


@pytest.mark.slow
def test_without_a_name_the_agent_id_is_the_same_for_every_run_in_a_folder_unless_taken(
    env: dict[str, str], relay: Relay, tmp_path: Path
) -> None:
    stable = derive_agent_id(
        host=HOSTNAME,
        tool=Path(sys.executable).name,
        project=tmp_path.name,
        cwd=str(tmp_path),
        instance_id=None,
    )
    args = ["--prompt", PROMPT, *repl()]
    first = headless(env, tmp_path, "--log", str(tmp_path / "1.log"), *args)
    registered(relay, stable)
    second = headless(env, tmp_path, "--log", str(tmp_path / "2.log"), *args)
    deadline, since = time.monotonic() + HUNG, 0
    while len(relay.agents(online_only=True)) < 2:
        assert time.monotonic() < deadline, relay.agents()
        events = relay.wait_events(max(deadline - time.monotonic(), 0), since=since)
        since = max([since, *(e.id for e in events)])
    ids = {a.id for a in relay.agents(online_only=True)}
    assert stable in ids  # the first run's; the second, started while it ran, has its own
    alice = relay.register("alice", pid=None)
    sent = {agent_id: alice.send(agent_id, f"EXIT {n}") for n, agent_id in enumerate(sorted(ids))}
    assert {finish(first)[0], finish(second)[0]} == {0, 1}
    # A later run there is the stable agent again, and the message its first run
    # exited on (typed, so delivered, but never read) is typed again.
    third = headless(env, tmp_path, "--log", str(tmp_path / "3.log"), *args)
    assert finish(third)[0] == int(sent[stable].body.split()[1])
    text = (tmp_path / "3.log").read_text(encoding="utf-8").replace("\r", "")
    assert [r.message_id for r in received(text)] == [sent[stable].id]


def test_piped_stdin_is_typed_into_the_program_and_then_ends_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relaybus", "run", "--name", "cat", "--", "cat"],
        cwd=tmp_path,
        env=env,
        input="hello from a pipe\n",
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert proc.returncode == 0
    assert "hello from a pipe" in proc.stdout
    assert "runs as agent cat" in proc.stderr


def test_the_cli_s_injection_modes_formats_and_quiet_window_are_the_runtime_s() -> None:
    assert INJECT_MODES == tuple(m.value for m in InjectMode)
    assert MESSAGE_FORMATS == tuple(f.value for f in MessageFormat)
    assert QUIET_DEFAULT == QUIET_SECONDS


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--", "no-such-program-here"], "command not found: no-such-program-here"),
        (["--", "./missing.sh"], "cannot run ./missing.sh: it does not exist"),
        (["--prompt", "(", *repl()], "--prompt '(' is not a valid regular expression"),
        (["--quiet", "0", *repl()], "--quiet must be above 0 seconds"),
        (["--max-restarts", "2", *repl()], "--max-restarts needs --restart on-failure"),
        (["--format", "json", *repl()], "Invalid value for '--format'"),
        (["--headless", "--log", "/proc/no/such.log", *repl()], "cannot write the log"),
        ([], "Missing argument"),
    ],
    ids=["not-found", "no-file", "regex", "quiet", "max-restarts", "format", "log", "no-command"],
)
def test_bad_input_is_one_line_on_stderr_and_registers_nothing(
    env: dict[str, str], tmp_path: Path, args: list[str], error: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relaybus", "run", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("relaybus: error: ")
    assert error in line
    if (tmp_path / "relay").exists():
        with Relay.open(dir=tmp_path / "relay") as relay:
            assert relay.agents() == []


def test_an_unreachable_relay_server_is_one_line_on_stderr(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "RELAYBUS_URL": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "-m", "relaybus", "run", "--name", "x", *repl()],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith("relaybus: error: ")
    assert "127.0.0.1:9" in line


def cli_call(env: dict[str, str], cwd: Path, *args: str) -> dict[str, object]:
    """``relaybus ARGS --json`` as a process (on the runner's relay); its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", *args, "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@pytest.mark.slow
def test_a_runner_keeps_its_agent_while_the_cli_changes_its_label_tags_caps_and_channels(
    term: Callable[[list[str]], Term], relay: Relay, env: dict[str, str], tmp_path: Path
) -> None:
    alice = relay.register("alice", pid=None)
    t = term(["--name", "worker", "--quiet", "0.3", "--prompt", PROMPT, *repl()])
    t.expect(r"repl> ")
    registered(relay, "worker")
    epoch = relay.get_agent("worker").epoch

    cli_call(env, tmp_path, "--as", "worker", "label", "python worker")
    cli_call(env, tmp_path, "--as", "worker", "tags", "add", "python")
    cli_call(env, tmp_path, "--as", "worker", "caps", "add", "review")
    shown = cli_call(env, tmp_path, "--as", "worker", "channels", "join", "ops")
    sent = alice.send("tag:python", "typed into the runner still holding worker", channel="ops")
    t.expect_message(sent)  # the runner read it and marked it read with its epoch
    [receipt] = relay.deliveries(sent.id, until="read", timeout=HUNG)

    assert (shown["label"], shown["epoch"]) == ("python worker", epoch)
    assert (shown["tags"], shown["capabilities"], shown["channels"]) == (
        ["python"],
        ["review"],
        ["ops"],
    )
    assert (receipt.state, receipt.via) == (DeliveryState.READ, Via.PTY)
    assert relay.get_agent("worker").epoch == epoch
    t.type("exit 0\r")
    assert t.wait_exit() == 0
