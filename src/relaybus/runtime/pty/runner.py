"""``relaybus run``: a program under a pseudo-terminal, registered as an agent,
with the relay's messages typed into it when it is idle.

:func:`run` registers the agent, starts the program in a PTY (ptyprocess) with
the user's terminal passed through (raw mode, window size, exit code), and
serves it with the runtime (:mod:`relaybus.runtime`): messages
are typed (``framed``, or the body alone: ``raw``) at idle boundaries
(``wait``) or at once (``steer``, and any urgent message), each moves queued →
delivered (typed, ``via=pty``) → read (the program's next idle boundary: quiet
and, with a prompt pattern, back at its prompt), and the agent reports busy/idle, heartbeats and
goes offline when the program exits. With ``restart="on-failure"`` a program
that crashed (non-zero exit or a signal) is started again, up to
``max_restarts`` times, and what it had not read is typed again.

The program's environment names the agent (``RELAYBUS_AGENT``, its profile in
``RELAYBUS_LABEL``/``TAGS``/``CAPS``/``CHANNELS``) and the relay
(``RELAYBUS_DATABASE``, or ``RELAYBUS_URL`` with the agent's token), so
``relaybus send``/``reply`` inside it act as the agent; ``RELAYBUS_SESSION`` is
the runner's session key, so a relaybus MCP server or hook inside the program
joins the same registration (same agent id and instance) instead of fencing
the runner off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import IO, Literal

from ...client import AgentHandle, Relay
from ...errors import InvalidInput
from ...identity import state_dir
from ...logs import notices
from ...models import AgentStatus, Approval, Via, parse_choice
from .. import (
    IdleGate,
    InjectMode,
    Mailbox,
    MessageFormat,
    Presence,
    Screen,
    compile_prompt,
    parse_format,
    parse_mode,
)
from ..approval import preset_flags
from .agent import child_env, runner_agent_id
from .child import resolve, spawn
from .loop import ProgramExit, Pump
from .terminal import Signals, raw_mode, terminal_size, wait_for_stop, write_all

logger = logging.getLogger("relaybus.runtime")

#: Terminal size when there is no terminal to follow (headless): (cols, rows).
HEADLESS_SIZE = (120, 40)
#: Pause before restart number n (1-based): min(RESTART_BASE * 2**(n-1), RESTART_CAP) s.
RESTART_BASE = 0.5
RESTART_CAP = 10.0

RestartPolicy = Literal["no", "on-failure"]


@dataclass
class RunOptions:
    """What to run and how (the options of ``relaybus run``).

    Attributes:
        command: the program and its arguments.
        name: the agent id; default derived from host, program name and cwd.
        label, tags, capabilities, channels: the registration's.
        quiet: the quiet window, seconds.
        prompt: a regular expression the last screen line must match to be idle.
        inject: ``wait`` (type at idle boundaries) or ``steer`` (at once).
        format: ``framed`` (header, body, how to reply: agent CLIs) or ``raw``
            (the body alone, as a person would type it: REPLs, shells).
        claim_first: claim a claimable message's task before typing it (see
            :mod:`relaybus.runtime.claims`); ``claim_notices``: type a notice for a
            task another agent won.
        batch: at most this many pending messages typed as one input, one turn of
            the program (:func:`relaybus.runtime.batch_keystrokes`); 1: one each.
        headless: no terminal: output to :attr:`log` (default
            ``state_dir()/runs/AGENT.log``), stdin not read.
        log: also write the program's output to this file (appended).
        restart: ``no`` or ``on-failure``.
        max_restarts: at most this many restarts (``on-failure``).
        cwd: where the program runs (default: the current directory).
        env: the environment the program's starts from (default ``os.environ``).
        approval: the agent's approval mode (open, guarded, read-only; None: not
            given); a ``codex`` program gets its flags (:func:`..approval.preset_flags`).
    """

    command: Sequence[str]
    name: str | None = None
    label: str | None = None
    tags: Sequence[str] = ()
    capabilities: Sequence[str] = ()
    channels: Sequence[str] = ()
    quiet: float = 0.75
    prompt: str | None = None
    inject: InjectMode | str = InjectMode.WAIT
    format: MessageFormat | str = MessageFormat.FRAMED
    claim_first: bool = False
    claim_notices: bool = True
    batch: int = 1
    headless: bool = False
    log: Path | None = None
    restart: RestartPolicy = "no"
    max_restarts: int = 3
    cwd: Path | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)
    approval: str | None = None

    def check(self) -> None:
        """Refuse bad values before anything starts.

        Raises:
            InvalidInput: no command, a bad prompt pattern, quiet window,
                format, restart policy or approval mode, a negative ``max_restarts``, a
                ``batch`` below 1.
        """
        if not self.command or not self.command[0]:
            raise InvalidInput("no command given: relaybus run [OPTIONS] -- CMD [ARGS...]")
        if not self.quiet > 0:
            raise InvalidInput(f"--quiet must be above 0 seconds, not {self.quiet}")
        compile_prompt(self.prompt)
        parse_mode(self.inject)
        parse_format(self.format)
        if self.approval is not None:
            parse_choice(Approval, "approval mode", self.approval)
        if self.restart not in ("no", "on-failure"):
            raise InvalidInput(f"--restart is no or on-failure, not {self.restart!r}")
        if self.max_restarts < 0:
            raise InvalidInput(f"--max-restarts must be 0 or more, not {self.max_restarts}")
        if self.batch < 1:
            raise InvalidInput(f"--batch must be 1 or more messages, not {self.batch}")


@dataclass(eq=False)
class Runner:
    """One ``relaybus run``: :meth:`run` it once.

    Args:
        options: what to run.
        relay: the relay to register with, or a function that opens it (called
            once the options are checked); default ``Relay.open()``, closed at the end.
        stdin_fd, stdout_fd: the user's terminal (default 0 and 1).
        notice: tells the user one line (default: ``relaybus: TEXT`` on stderr).

    Attributes after :meth:`run` (or while it runs): ``agent_id``,
    ``log_path``, ``restarts``, ``unread`` (messages left unread at the end).
    """

    options: RunOptions
    _: KW_ONLY
    relay: Relay | Callable[[], Relay] | None = None
    stdin_fd: int = 0
    stdout_fd: int = 1
    notice: Callable[[str], None] | None = None
    agent_id: str | None = field(default=None, init=False)
    log_path: Path | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    unread: int = field(default=0, init=False)
    _raw: bool = field(default=False, init=False)

    def tell(self, text: str) -> None:
        """One line for the user through :attr:`notice`, or by default on stderr
        (``\\r\\n`` while their terminal is raw)."""
        if self.notice is not None:
            self.notice(text)
            return
        end = "\r\n" if self._raw else "\n"
        with contextlib.suppress(OSError):
            sys.stderr.write(f"relaybus: {text}{end}")
            sys.stderr.flush()

    def run(self) -> int:
        """Register, run the program (restarting it per the policy) and return its
        exit code (128 + signal if a signal ended it).

        Raises:
            InvalidInput: bad options, the command does not exist, the log
                cannot be opened. RelayError: the relay refused the
                registration or cannot be reached.
        """
        opts = self.options
        opts.check()
        cwd = str(opts.cwd or os.getcwd())
        base_env = dict(os.environ if opts.env is None else opts.env)
        command = preset_flags(opts.command, opts.approval)
        argv = [resolve(command[0], base_env, cwd), *command[1:]]
        given = self.relay
        relay = Relay.open() if given is None else given if isinstance(given, Relay) else given()
        try:
            # The runtime's warnings (a relay that went away, a refused receipt)
            # reach the user as notices, one line each (right in a raw terminal too).
            with notices(logger, self.tell):
                return self._serve(relay, argv, base_env, cwd)
        finally:
            if given is None:
                relay.close()

    # -- the parts -------------------------------------------------------------

    def _serve(self, relay: Relay, argv: list[str], base_env: dict[str, str], cwd: str) -> int:
        opts = self.options
        log = self._open_log(base_env) if opts.headless or opts.log else None
        try:
            key = secrets.token_hex(6)
            handle = self._register(relay, cwd, key)
            env = child_env(base_env, relay, handle, opts, key)
            signals = Signals()
            with signals.blocked():  # the runtime's threads inherit the mask: see blocked()
                mailbox = Mailbox(
                    handle,
                    signals.wake,
                    opts.inject,
                    via=Via.PTY,
                    claim_first=opts.claim_first,
                    claim_notices=opts.claim_notices,
                )
                presence = Presence(handle)
            try:
                with signals.blocked():
                    mailbox.start()
                    presence.start()
                return self._loop(argv, env, cwd, signals, mailbox, presence, log)
            finally:
                signals.close()
                mailbox.stop()
                self.unread = mailbox.unread()
                presence.stop(offline=True)
        finally:
            if log is not None:
                log.close()

    def _open_log(self, env: Mapping[str, str]) -> IO[bytes]:
        path = self.options.log
        if path is None:
            name = self.options.name or Path(self.options.command[0]).name
            path = state_dir(env) / "runs" / f"{name}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "ab", buffering=0)  # closed by _serve
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise InvalidInput(f"cannot write the log {path}: {reason}", log=str(path)) from None
        self.log_path = path
        return handle

    def _register(self, relay: Relay, cwd: str, key: str) -> AgentHandle:
        opts = self.options
        tool = Path(opts.command[0]).name
        instance = f"session-{key}"
        agent_id = opts.name or runner_agent_id(relay, tool, cwd, instance)
        handle = relay.register(
            agent_id,
            label=opts.label,
            tags=opts.tags,
            capabilities=opts.capabilities,
            channels=opts.channels,
            meta={
                "runtime": "pty",
                "inject": parse_mode(opts.inject).value,
                "format": parse_format(opts.format).value,
                "command": shlex.join(opts.command)[:200],
                "session": key,
            },
            pid="current",
            instance_id=instance,
            tool=tool,
            cwd=cwd,
            approval=opts.approval,
        )
        self.agent_id = handle.id
        return handle

    def _loop(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        signals: Signals,
        mailbox: Mailbox,
        presence: Presence,
        log: IO[bytes] | None,
    ) -> int:
        opts = self.options
        interactive = not opts.headless
        stdin_fd = self.stdin_fd if interactive else None
        size_fds = (self.stdout_fd, self.stdin_fd) if interactive else ()
        where = f", output in {self.log_path}" if opts.headless else ""
        self.tell(f"{shlex.join(opts.command)} runs as agent {self.agent_id}{where}")
        gate = IdleGate(opts.quiet, compile_prompt(opts.prompt))

        shown = [self.stdout_fd] if interactive else []  # emptied if the terminal goes

        def output(data: bytes) -> None:
            for fd in shown:
                try:
                    write_all(fd, data)
                except OSError:  # the user's terminal is gone (closed window): run on
                    shown.clear()
            if log is not None:
                log.write(data)

        signals.install()
        with raw_mode(stdin_fd) as raw:
            self._raw = raw
            try:
                while True:
                    size = terminal_size(*size_fds) or HEADLESS_SIZE
                    screen = Screen(*size)
                    gate.activity()
                    try:
                        child = spawn(argv, env=env, cwd=cwd, size=size)
                    except OSError as exc:
                        self.tell(f"cannot start {argv[0]}: {exc}")
                        return 126
                    try:
                        outcome = Pump(
                            child,
                            gate=gate,
                            screen=screen,
                            mailbox=mailbox,
                            presence=presence,
                            signals=signals,
                            output=output,
                            stdin_fd=stdin_fd,
                            size_fds=size_fds,
                            on_notice=self.tell,
                            message_format=parse_format(opts.format),
                            batch=opts.batch,
                        ).run()
                    finally:
                        child.close()
                        output_reset = screen.reset_sequence()
                        for fd in shown:
                            with contextlib.suppress(OSError):
                                write_all(fd, output_reset)
                    if not self._restart_after(outcome, signals):
                        return outcome.code
                    mailbox.restart()
                    presence.report(AgentStatus.BUSY)
            finally:
                self._raw = False

    def _restart_after(self, outcome: ProgramExit, signals: Signals) -> bool:
        """Whether to start the program again (after a pause), per the policy."""
        opts = self.options
        failed = outcome.code != 0
        if opts.restart != "on-failure" or not failed or outcome.stop_signal is not None:
            return False
        how = (
            f"was killed by signal {outcome.killed_by}"
            if outcome.killed_by is not None
            else f"exited with {outcome.code}"
        )
        if self.restarts >= opts.max_restarts:
            self.tell(f"{opts.command[0]} {how}; not restarting ({opts.max_restarts} restarts)")
            return False
        self.restarts += 1
        pause = min(RESTART_BASE * 2 ** (self.restarts - 1), RESTART_CAP)
        self.tell(
            f"{opts.command[0]} {how}; restarting in {pause:g} s "
            f"({self.restarts} of {opts.max_restarts})"
        )
        return not wait_for_stop(signals, pause)


def run(options: RunOptions, *, relay: Relay | Callable[[], Relay] | None = None) -> int:
    """Run ``options.command`` as an agent (see the module docstring) and return
    its exit code: the program's, or 128 + the signal that ended it.

    Raises:
        InvalidInput: bad options, a command that does not exist, an unwritable log.
        RelayError: the relay refused the registration or cannot be reached.
    """
    return Runner(options, relay=relay).run()
