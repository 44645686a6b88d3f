"""An agent's presence while a terminal program runs: heartbeats, busy and idle, and
the leases it holds.

A :class:`Presence` thread heartbeats every ``heartbeat`` seconds (a third of
the relay's ``stale_ttl`` by default, so the agent never reads as stale),
reports the program's busy/idle status when it changes, and marks the agent
offline when stopped. Status changes are coalesced: the relay hears the latest
state at most once per ``min_interval`` seconds, so a program that flickers
between output and silence (a clock, a spinner) costs at most one write a
second, and the terminal loop never waits on the relay. While it runs, a
:class:`~relaybus.client.leases.LeaseKeeper` renews the leases the agent holds (each
by its own length, whoever claimed them: the program's ``relaybus claim``, the
runtime's ``--claim-first``), so they lapse only once the runtime is gone.
"""

from __future__ import annotations

import logging
import threading
import time

from ..client import AgentHandle
from ..client.leases import LeaseKeeper
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
        leases: renew the leases the agent holds while running (:attr:`keeper`).

    Thread-safe. Call :meth:`start`, then :meth:`report` as the program works,
    and :meth:`stop` at the end.
    """

    def __init__(
        self,
        handle: AgentHandle,
        *,
        heartbeat: float | None = None,
        min_interval: float = MIN_INTERVAL,
        leases: bool = True,
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
        #: Renews the agent's leases while this runs (None: ``leases=False``).
        self.keeper = LeaseKeeper(handle) if leases else None

    @property
    def reported(self) -> AgentStatus | None:
        """The last status the relay accepted (None before the first report)."""
        with self._cond:
            return self._reported

    def start(self) -> None:
        """Start heartbeating (and renewing the leases held)."""
        self._thread.start()
        if self.keeper is not None:
            self.keeper.start()

    def report(self, status: AgentStatus | str) -> None:
        """The program is now ``status`` (``busy`` or ``idle``); sent if it differs
        from what the relay last heard. Never blocks on the relay."""
        wanted = AgentStatus(status)
        with self._cond:
            self._wanted = wanted
            self._cond.notify_all()

    def stop(self, *, offline: bool = True, timeout: float = 5.0) -> None:
        """Stop heartbeating and renewing and, if ``offline``, mark the agent offline
        (which also gives back the tasks it holds). Waits at most ``timeout`` seconds
        for the thread; a refusal from the relay is logged, not raised."""
        if self.keeper is not None:
            self.keeper.stop()
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
