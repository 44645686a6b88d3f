"""One spawned agent under the supervisor: its program's runs (started again per the
restart policy, with backoff), its output (the log file, the last lines, a pyte
screen in PTY mode), idle detection, raw input and release.

Everything here runs on the warm relay's event loop; what the relay must hear of
(the events, registration, the task) goes through :class:`Hooks`, which the
supervisor implements over the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ...errors import Conflict
from ...models import RestartPolicy, SpawnedAgent, SpawnedScreen, SpawnedState, SpawnEventKind
from ..idle import IdleGate
from ..screen import Screen
from .child import Child, start_headless, start_pty
from .spec import SpawnPlan

logger = logging.getLogger("relaybus.spawn")

#: The terminal of a PTY-mode program: (cols, rows).
SIZE = (120, 40)
#: Pause before restart number n (1-based): min(RESTART_BASE * 2**(n-1), RESTART_CAP) s.
RESTART_BASE = 0.5
RESTART_CAP = 10.0
#: Lines an ``exited`` event carries.
EXIT_LINES = 20
#: Output of the current run kept for the task's result and the last lines (bytes).
KEEP_BYTES = 64 * 1024
#: Characters of output that finish a headless agent's task as its result.
RESULT_CHARS = 4000
#: Seconds a forced release waits after the second SIGTERM before SIGKILL.
KILL_AFTER = 2.0
#: Escape sequences (CSI, OSC, two-byte) taken out of output shown as lines.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain_lines(data: bytes) -> list[str]:
    """Terminal output as text lines: escape sequences and carriage returns removed."""
    text = _ESCAPES.sub("", data.decode("utf-8", errors="replace"))
    # A carriage return mid-line redraws it: what follows the last one is what shows.
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Hooks:
    """What an agent tells the relay (coroutines; errors are logged, never raised)."""

    event: Callable[..., Coroutine[Any, Any, None]]
    started: Callable[[SpawnedAgentProcess], Awaitable[None]]
    finished: Callable[[SpawnedAgentProcess, str], Awaitable[None]]


class SpawnedAgentProcess:
    """A spawned agent: :meth:`start` it once; it runs until its program exits for
    good or :meth:`release` stops it (:attr:`done` is then set)."""

    def __init__(self, workspace: str, plan: SpawnPlan, log_path: Path, hooks: Hooks) -> None:
        self.workspace = workspace
        self.plan = plan
        self.spec = plan.spec
        self.name = plan.spec.name
        self.log_path = log_path
        self.hooks = hooks
        self.state = SpawnedState.RUNNING
        self.restarts = 0
        self.exit_code: int | None = None
        self.exited_at: datetime | None = None
        self.started_at = now_utc()
        self.last_lines: list[str] = []
        self.idle = False
        self.child: Child | None = None
        self.screen: Screen | None = None
        self.output = bytearray()  # of the current run, the last KEEP_BYTES
        self.release_reason: str | None = None
        self.done = asyncio.Event()
        #: Its events go to the log one at a time, in the order they happened.
        self.events_lock = asyncio.Lock()
        self._released = asyncio.Event()
        self._log: IO[bytes] | None = None
        self._gate: IdleGate | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._task_pending = plan.type_task
        self._supervising: asyncio.Task[None] | None = None

    # -- what it is -------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Running, or between two runs."""
        return self.state in (SpawnedState.RUNNING, SpawnedState.RESTARTING)

    def model(self) -> SpawnedAgent:
        spec = self.spec
        return SpawnedAgent(
            name=self.name,
            workspace=self.workspace,
            cli=spec.cli,
            command=self.plan.command,
            headless=spec.headless,
            cwd=self.plan.cwd,
            model=spec.model,
            restart=self.plan.restart,
            state=self.state,
            pid=self.child.pid if self.child is not None and self.child.running else None,
            restarts=self.restarts,
            exit_code=self.exit_code,
            idle=self.idle,
            task_id=spec.task_id,
            started_at=self.started_at,
            exited_at=self.exited_at,
            last_lines=self.last_lines,
        )

    def screen_model(self) -> SpawnedScreen:
        """Raises Conflict: headless (no terminal)."""
        if self.screen is None:
            raise Conflict(f"{self.name} runs headless: it has no screen (see its logs)")
        lines = self.screen.lines()
        rows, cols = self.screen.rows, self.screen.cols
        cursor = self.screen._screen.cursor  # pyte's; Screen shows no cursor of its own
        return SpawnedScreen(
            name=self.name,
            columns=cols,
            rows=rows,
            lines=lines + [""] * (rows - len(lines)),
            cursor_row=int(cursor.y),
            cursor_column=int(cursor.x),
        )

    def tail(self, count: int = EXIT_LINES) -> list[str]:
        """The last ``count`` non-empty-ended lines of the current run's output."""
        lines = plain_lines(bytes(self.output))
        while lines and not lines[-1].strip():
            lines.pop()
        return lines[-count:] if count > 0 else []

    # -- running ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the program and supervise it in the background.

        Raises:
            InvalidInput, OSError: it could not be started (nothing runs then).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log = open(self.log_path, "ab", buffering=0)  # closed when done
        try:
            await self.hooks.started(self)
            self._run()
        except BaseException:
            self._log.close()
            self._log = None
            raise
        await self.hooks.event(self, SpawnEventKind.SPAWNED)
        self._supervising = asyncio.create_task(self._supervise(), name=f"spawn {self.name}")

    def _run(self) -> None:
        plan = self.plan
        self.output.clear()
        self.idle = False
        if plan.spec.headless:
            self.child = start_headless(
                plan.argv, env=plan.env, cwd=plan.cwd, on_output=self._on_output
            )
        else:
            self.screen = Screen(*SIZE)
            self._gate = IdleGate(plan.idle_seconds)
            self.child = start_pty(
                plan.argv, env=plan.env, cwd=plan.cwd, size=SIZE, on_output=self._on_output
            )
            self._arm_idle()
        self.state = SpawnedState.RUNNING

    def _on_output(self, data: bytes) -> None:
        if self._log is not None:
            try:
                self._log.write(data)
            except OSError:  # a full disk: the run goes on, unlogged
                logger.warning("relaybus: cannot write %s", self.log_path)
        self.output += data
        if len(self.output) > 2 * KEEP_BYTES:
            del self.output[: len(self.output) - KEEP_BYTES]
        if self.screen is not None and self._gate is not None:
            self.screen.feed(data)
            self._gate.activity()
            self.idle = False
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._gate is None or self.idle:
            return
        loop = asyncio.get_running_loop()
        delay = max(self._gate.deadline() - loop.time(), 0.0)
        # IdleGate counts in time.monotonic(), the event loop's clock too.
        self._idle_timer = loop.call_later(delay + 0.01, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        gate, screen, child = self._gate, self.screen, self.child
        if gate is None or screen is None or child is None or not child.running:
            return
        if not gate.idle(screen.prompt_line()):
            self._arm_idle()
            return
        self.idle = True
        asyncio.get_running_loop().create_task(self.hooks.event(self, SpawnEventKind.IDLE))
        if self._task_pending and self.spec.task:
            self._task_pending = False
            asyncio.get_running_loop().create_task(self._type_task(self.spec.task))

    async def _type_task(self, task: str) -> None:
        try:
            await self.type_in(task, enter=True)
        except Conflict as exc:  # it exited meanwhile: nobody to type it to
            logger.warning("relaybus: %s was not typed its task: %s", self.name, exc.message)

    async def type_in(self, text: str, *, enter: bool = False) -> None:
        """Write ``text`` (and Enter: a carriage return) to the terminal, as typed.

        Raises:
            Conflict: headless, or not running.
        """
        child = self.child
        if self.spec.headless:
            raise Conflict(f"{self.name} runs headless: it reads no input")
        if child is None or not child.running or child.fd is None:
            raise Conflict(f"{self.name} is not running ({self.state.value})")
        data = text.encode("utf-8") + (b"\r" if enter else b"")
        if self._gate is not None:
            self._gate.user_input(data)
            self.idle = False
            self._arm_idle()
        for _ in range(1000):  # bounded: a program that never reads its terminal
            if not data:
                return
            try:
                written = child.write(data)
            except OSError as exc:
                raise Conflict(f"{self.name}'s terminal is gone: {exc}") from None
            data = data[written:]
            if data:
                await asyncio.sleep(0.01)
        raise Conflict(f"{self.name} does not read its terminal: input left unwritten")

    async def _supervise(self) -> None:
        try:
            while True:
                child = self.child
                assert child is not None
                code = await child.wait()
                if self._idle_timer is not None:
                    self._idle_timer.cancel()
                self.exit_code = code
                self.exited_at = now_utc()
                self.last_lines = self.tail()
                self.idle = False
                await self.hooks.event(
                    self, SpawnEventKind.EXITED, code=code, last_lines=self.last_lines
                )
                if self._released.is_set() or not self._restarts_after(code):
                    break
                self.state = SpawnedState.RESTARTING
                pause = min(RESTART_BASE * 2**self.restarts, RESTART_CAP)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), pause)
                if self._released.is_set():
                    break
                self.restarts += 1
                try:
                    self._run()
                except OSError as exc:
                    logger.warning("relaybus: cannot start %s again: %s", self.name, exc)
                    break
                await self.hooks.event(self, SpawnEventKind.RESTARTED)
        finally:
            self.state = SpawnedState.RELEASED if self._released.is_set() else SpawnedState.EXITED
            output = bytes(self.output)
            if self._log is not None:
                self._log.close()
                self._log = None
            await self.hooks.finished(self, output.decode("utf-8", errors="replace"))
            # A release may come while the relay hears of the exit: it counts.
            if self._released.is_set():
                self.state = SpawnedState.RELEASED
                await self.hooks.event(self, SpawnEventKind.RELEASED, reason=self.release_reason)
            self.done.set()

    def _restarts_after(self, code: int) -> bool:
        policy = self.plan.restart
        return policy is RestartPolicy.ALWAYS or (policy is RestartPolicy.ON_FAILURE and code != 0)

    async def release(self, reason: str | None, timeout: float) -> None:
        """Stop it for good: SIGTERM (``relaybus run`` passes it on), then after
        ``timeout`` seconds SIGTERM again (``relaybus run`` kills its program) and
        SIGKILL to the whole tree :data:`KILL_AFTER` seconds later. Returns once it
        is released (or had exited already)."""
        if not self._released.is_set():
            self.release_reason = reason
            self._released.set()
        if self.done.is_set():
            return
        child = self.child
        if child is not None and child.running:
            child.signal(signal.SIGTERM)
            if not await _wait(self.done, timeout):
                child.signal(signal.SIGTERM)
                if not await _wait(self.done, KILL_AFTER):
                    child.kill_tree()
        await self.done.wait()

    def close(self) -> None:
        """Forget the supervising task (the loop is going)."""
        if self._supervising is not None and not self._supervising.done():
            self._supervising.cancel()


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout, 0.0))
    return event.is_set()
