"""An agent living in a tmux pane: its messages typed into the pane when it is idle.

:class:`PaneAgent` is the loop behind ``relaybus tmux attach``. It follows the
pane through a control-mode client (:mod:`.control`): every ``%output`` of the
pane is activity for the :class:`~relaybus.runtime.IdleGate`, and
window, layout and mode notifications make it check that the pane still exists
and can take keys. It uses the shared runtime core for the rest: the
:class:`~relaybus.runtime.Mailbox` (in-order queue, receipts with
``via="tmux"``), :class:`~relaybus.runtime.Presence` (heartbeats,
busy/idle) and :func:`~relaybus.runtime.typed_text` (the message
``framed``, or its body alone: ``raw``); :class:`~relaybus.runtime.Presence` also
renews the leases the agent holds while attached.

Idle is the runtime's rule: no pane output for the quiet window and, with a
prompt pattern, the pattern matching the prompt line of the pane's screen (the
last non-blank line, up to the cursor when it is there; read with
``capture-pane``, so it includes what was on screen before the adapter
attached). A pane in copy mode, with input disabled, or whose program
died is never idle. The loop sleeps on a condition until the quiet window ends,
pane output arrives while it is idle, a message arrives or tmux reports a
change: it never polls on a short timer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from ...client import AgentHandle
from ...models import AgentStatus, Message, Via
from .. import (
    IdleGate,
    InjectMode,
    Mailbox,
    MessageFormat,
    Presence,
    parse_format,
    parse_mode,
    typed_text,
)
from .control import CommandFailed, ControlClient, ControlClosed
from .inject import PaneState, only, pane_state, type_text
from .server import NoServer, Pane, PaneNotFound, TmuxError, TmuxServer

logger = logging.getLogger(__name__)

#: Longest sleep of an idle loop, seconds: a safety net that re-checks the pane
#: in case tmux changed something it sends no notification for (``select-pane -d``).
SAFETY_SECONDS = 60.0

#: Notifications after which the pane may be gone, moved or in another mode.
CHANGES = frozenset(
    {
        "window-close",
        "unlinked-window-close",
        "layout-change",
        "window-pane-changed",
        "session-changed",
        "sessions-changed",
        "pane-mode-changed",
        "exit",
    }
)


@dataclass(frozen=True)
class Ending:
    """Why :meth:`PaneAgent.run` returned: ``reason`` for people; ``stopped`` when
    asked to (:meth:`PaneAgent.stop`), ``failed`` when the relay refused the agent
    (fenced off by a newer registration, removed); neither when the pane went away."""

    reason: str
    stopped: bool = False
    failed: bool = False


class PaneAgent:
    """Delivers ``handle``'s messages into ``pane`` (see the module docstring).

    Args:
        handle: the agent, registered (with ``meta["tmux"]``, see :mod:`.binding`).
        server: the pane's tmux server.
        pane: the pane, resolved (:meth:`TmuxServer.pane`).
        gate: the idle rule (quiet window, prompt pattern); default the runtime's
            quiet window and no prompt.
        mode: ``wait`` (type at idle boundaries) or ``steer`` (at once).
        message_format: ``framed`` (header, body, how to reply) or ``raw`` (the
            body alone).
        claim_first, claim_notices: claim a claimable message's task before typing
            it, and type a notice for one another agent won (see
            :mod:`relaybus.runtime.claims`).

    Raises:
        InvalidInput: an unknown ``mode`` or ``message_format``.

    :meth:`run` blocks until the pane goes away or :meth:`stop` is called (from
    any thread or a signal handler).
    """

    def __init__(
        self,
        handle: AgentHandle,
        server: TmuxServer,
        pane: Pane,
        *,
        gate: IdleGate | None = None,
        mode: InjectMode | str = InjectMode.WAIT,
        message_format: MessageFormat | str = MessageFormat.FRAMED,
        claim_first: bool = False,
        claim_notices: bool = True,
    ) -> None:
        self.handle = handle
        self.server = server
        self.pane = pane
        self.gate = gate or IdleGate()
        self.mode = parse_mode(mode)
        self.message_format = parse_format(message_format)
        self.claim_first, self.claim_notices = claim_first, claim_notices
        self.buffer = f"relaybus-{os.getpid()}"
        # A re-entrant lock: stop() may run in a signal handler on the thread
        # that holds it.
        self._cond = threading.Condition(threading.RLock())
        self._last_output = float("-inf")
        self._changed = False
        self._woken = False
        self._stopping = False
        self._sleeping = False  # waiting with no deadline: output must wake the loop
        self._control: ControlClient | None = None
        self._held: Message | None = None

    # -- control from other threads -----------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to end (safe from a signal handler)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def _on_output(self, pane_id: str, data: bytes) -> None:
        with self._cond:
            self._last_output = time.monotonic()
            if self._sleeping:
                self._cond.notify_all()

    def _on_event(self, name: str, args: str) -> None:
        if name in CHANGES:
            with self._cond:
                self._changed = True
                self._cond.notify_all()

    # -- the loop ------------------------------------------------------------

    def run(self) -> Ending:
        """Attach, deliver messages until the pane goes away or :meth:`stop`, then
        mark the agent offline. Returns why it ended.

        Raises:
            TmuxError: the first attach to the pane's session failed.
            RelayError: the relay could not be read at the start.

        The agent is marked offline however it ends.
        """
        mailbox = Mailbox(
            self.handle,
            self._wake,
            self.mode,
            via=Via.TMUX,
            claim_first=self.claim_first,
            claim_notices=self.claim_notices,
        )
        presence = Presence(self.handle)
        try:
            self._control = self._connect()
            mailbox.start()
            presence.start()
            return self._loop(mailbox, presence)
        finally:
            mailbox.stop()
            presence.stop(offline=True)
            if self._control is not None:
                self._control.close()

    def _connect(self) -> ControlClient:
        return ControlClient(
            self.server,
            self.pane.session_id,
            on_output=self._on_output,
            on_event=self._on_event,
            watch=[self.pane.id],
        ).start()

    def _loop(self, mailbox: Mailbox, presence: Presence) -> Ending:
        was_idle = False
        while True:
            with self._cond:
                if self._stopping:
                    return Ending("stopped", stopped=True)
                if self._last_output > self.gate.last_activity:
                    self.gate.activity(self._last_output)
                changed, self._changed = self._changed, False
                self._woken = False
            if mailbox.error is not None:
                return Ending(f"the relay refused {self.handle.id}: {mailbox.error}", failed=True)
            try:
                if changed:
                    gone = self._check_pane()
                    if gone is not None:
                        return Ending(gone)
                # One clock reading per turn: if _idle and _sleep each read it, the
                # window could end between them and the turn sleep as if held back.
                now = time.monotonic()
                idle = self._idle(now)
                if idle != was_idle:
                    presence.report(AgentStatus.IDLE if idle else AgentStatus.BUSY)
                    if idle:
                        mailbox.settled()
                    was_idle = idle
                if self._deliver(mailbox, idle):
                    presence.report(AgentStatus.BUSY)
                    was_idle = False
                    continue
            except (CommandFailed, ControlClosed) as exc:
                gone = self._check_pane()
                if gone is not None:
                    return Ending(gone)
                logger.info("tmux command failed, pane still there: %s", exc)
                now = time.monotonic()
            self._sleep(was_idle, now)

    def _idle(self, now: float) -> bool:
        """Whether the pane is at an idle boundary at ``now`` (monotonic seconds;
        asks tmux only once the quiet window is over)."""
        if now < self.gate.deadline():
            return False
        state = self._state()
        return state.ready and self.gate.idle(state.last_line, now)

    def _state(self) -> PaneState:
        assert self._control is not None
        return pane_state(self._control, self.pane.id, screen=self.gate.prompt is not None)

    def _deliver(self, mailbox: Mailbox, idle: bool) -> bool:
        """Type the next message if one is due and the pane takes keys; True if typed."""
        if self._held is None:
            self._held = mailbox.next(idle)
        message = self._held
        if message is None:
            return False
        if not idle and not self._state().ready:
            return False  # copy mode or input off: keep it, ahead of the rest
        assert self._control is not None
        text = typed_text(message, self.message_format, reply_as=self.handle.id)
        raw = self.message_format is MessageFormat.RAW
        type_text(self._control, self.pane.id, text, buffer=self.buffer, raw=raw)
        self._held = None
        with self._cond:
            self.gate.injected()
        mailbox.typed(message)
        return True

    def _sleep(self, idle: bool, now: float) -> None:
        """Wait for the next thing that could change the decision taken at
        ``now`` (the turn's monotonic clock reading)."""
        with self._cond:
            if self._stopping or self._changed or self._woken:
                return
            deadline = self.gate.deadline()
            if self._last_output > self.gate.last_activity:
                return  # output arrived while we worked
            if not idle and now < deadline:
                # Busy at the turn's reading: wake when the window ends (maybe now).
                self._cond.wait(max(deadline - time.monotonic(), 0.0))
                return
            # Idle, or past the window but held back (prompt, copy mode): only a
            # change can alter that.
            self._sleeping = True
            try:
                self._cond.wait(SAFETY_SECONDS)
                if not (self._stopping or self._woken) and self._last_output <= (
                    self.gate.last_activity
                ):
                    self._changed = True  # the safety net: look at the pane again
            finally:
                self._sleeping = False

    def _check_pane(self) -> str | None:
        """Whether the pane is still there: ``None`` if so (reattaching the control
        client if it ended, following the pane to another session), else why not."""
        control = self._control
        if control is None or not control.alive:
            return self._reconnect()
        try:
            found, mine = control.command_all(
                [
                    [
                        "list-panes",
                        "-a",
                        "-f",
                        only(self.pane.id),
                        "-F",
                        "#{pane_dead} #{session_id}",
                    ],
                    ["display-message", "-p", "#{session_id}"],
                ]
            )
        except CommandFailed as exc:
            logger.warning("checking pane %s: %s", self.pane.id, exc)
            return None
        except ControlClosed:
            return self._reconnect()
        if not found:
            return f"the tmux pane {self.pane.id} has closed"
        if any(line.startswith("1 ") for line in found):
            return f"the program in tmux pane {self.pane.id} has exited"
        if not any(line.split(" ", 1)[1:] == mine for line in found):
            # The pane's window moved to another session: follow it there.
            try:
                control.command("switch-client", "-c", control.client_name, "-t", self.pane.id)
            except CommandFailed as exc:
                logger.warning("could not follow pane %s: %s", self.pane.id, exc)
        return None

    def _reconnect(self) -> str | None:
        if self._control is not None:
            self._control.close()
            self._control = None
        try:
            self.pane = self.server.pane(self.pane.id)
        except PaneNotFound:
            return f"the tmux pane {self.pane.id} has closed"
        except NoServer:
            return f"the tmux server of pane {self.pane.id} has exited"
        except TmuxError as exc:
            return f"lost the tmux server: {exc.message}"
        if self.pane.dead:
            return f"the program in tmux pane {self.pane.id} has exited"
        try:
            self._control = self._connect()
        except TmuxError as exc:
            return f"could not reattach to tmux: {exc.message}"
        return None
