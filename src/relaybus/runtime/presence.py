"""An agent's presence while a terminal program runs: heartbeats, busy and idle.

A :class:`Presence` thread heartbeats every ``heartbeat`` seconds (a third of
the relay's ``stale_ttl`` by default, so the agent never reads as stale),
reports the program's busy/idle status when it changes, and marks the agent
offline when stopped. Status changes are coalesced: the relay hears the latest
state at most once per ``min_interval`` seconds, so a program that flickers
between output and silence (a clock, a spinner) costs at most one write a
second, and the terminal loop never waits on the relay.
"""

from __future__ import annotations

import logging
import threading
import time

from ..client import AgentHandle
from ..errors import RelayError
from ..models import AgentStatus

logger = logging.getLogger("relaybus.runtime")

#: Fewest seconds between two status reports.
MIN_INTERVAL = 1.0


class Presence:
    """Heartbeats and busy/idle reports for one agent (see the module docstring).

    Args:
        handle: the agent (registered).
        heartbeat: seconds between heartbeats; default a third of the relay's
            ``stale_ttl``.
        min_interval: fewest seconds between two status reports.

    Thread-safe. Call :meth:`start`, then :meth:`report` as the program works,
    and :meth:`stop` at the end.
    """

    def __init__(
        self,
        handle: AgentHandle,
        *,
        heartbeat: float | None = None,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self.handle = handle
        stale = handle.relay.settings.stale_ttl
        self.heartbeat = heartbeat if heartbeat is not None else stale / 3
        self.min_interval = min_interval
        self._cond = threading.Condition()
        self._wanted: AgentStatus | None = None
        self._reported: AgentStatus | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="relaybus-presence", daemon=True)

    @property
    def reported(self) -> AgentStatus | None:
        """The last status the relay accepted (None before the first report)."""
        with self._cond:
            return self._reported

    def start(self) -> None:
        """Start heartbeating."""
        self._thread.start()

    def report(self, status: AgentStatus | str) -> None:
        """The program is now ``status`` (``busy`` or ``idle``); sent if it differs
        from what the relay last heard. Never blocks on the relay."""
        wanted = AgentStatus(status)
        with self._cond:
            self._wanted = wanted
            self._cond.notify_all()

    def stop(self, *, offline: bool = True, timeout: float = 5.0) -> None:
        """Stop heartbeating and, if ``offline``, mark the agent offline (which also
        gives back the tasks it holds). Waits at most ``timeout`` seconds for the
        thread; a refusal from the relay is logged, not raised."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if offline:
            try:
                self.handle.update(status=AgentStatus.OFFLINE)
            except RelayError as exc:
                logger.warning("could not mark %s offline: %s", self.handle.id, exc)

    def _run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat
        last_report = float("-inf")
        while True:
            with self._cond:
                now = time.monotonic()
                due = [next_beat]
                changed = self._wanted is not None and self._wanted != self._reported
                if changed:
                    due.append(last_report + self.min_interval)
                timeout = max(min(due) - now, 0.0)
                if not self._stopping and timeout > 0:
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                now = time.monotonic()
                wanted = self._wanted
                send = (
                    wanted is not None
                    and wanted != self._reported
                    and now >= last_report + self.min_interval
                )
            try:
                if send and wanted is not None:
                    last_report = now
                    self.handle.heartbeat(status=wanted)
                    with self._cond:
                        self._reported = wanted
                    next_beat = now + self.heartbeat
                elif now >= next_beat:
                    next_beat = now + self.heartbeat
                    self.handle.heartbeat()
            except RelayError as exc:
                logger.warning("heartbeat of %s failed: %s", self.handle.id, exc)
            except Exception:  # the thread's top-level boundary
                logger.exception("heartbeat of %s failed", self.handle.id)
