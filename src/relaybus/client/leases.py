"""Keeping an agent's leases while a process lives: :class:`LeaseKeeper`.

A runtime that holds a session open (``relaybus run``, ``relaybus tmux attach``, an
MCP session) runs a keeper beside it: the leases its agent holds are renewed while
the process lives, each by the length it was claimed with
(:meth:`~relaybus.client.AgentHandle.renew_held`), and lapse within one lease once
the process dies, so the task returns to the others.

When to renew is :class:`LeaseSchedule`'s decision, from two inputs: what the last
renewal said (``next_in``, a third of the shortest lease held), and the agent's own
``task.claimed`` / ``task.renewed`` events, which tell of a claim made elsewhere (the
program's ``relaybus claim``, a tool call) within a moment of it. Between renewals the
keeper waits on the event log (the embedded store's wake-ups, or a server's
long-poll), never on a short timer: an agent holding nothing costs one waiting
read per :data:`WAIT_SECONDS` plus one per write to the relay's task events.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TypeVar

from ..errors import Conflict, Forbidden, NotFound, RelayError, Unauthorized
from ..models import Event, LeaseRenewal
from . import calls
from .handle import AgentHandle
from .transport import Call

T = TypeVar("T")

logger = logging.getLogger("relaybus.leases")

#: The event kinds that tell of a lease the agent took or extended.
LEASE_EVENTS = ("task.claimed", "task.renewed")
#: A renewal is due after this fraction of a lease (the service's ``next_in`` too).
RENEW_FRACTION = 1 / 3
#: Longest single wait on the event log, seconds: how long :meth:`LeaseKeeper.stop`
#: may leave the thread running.
WAIT_SECONDS = 10.0
#: Pause after a renewal failed for a passing reason (relay unreachable), seconds;
#: shorter when a lease held is shorter.
RETRY_SECONDS = 2.0
#: Errors after which the keeper stops: this instance was fenced off or removed.
FINAL = (Conflict, Forbidden, NotFound, Unauthorized)


class LeaseSchedule:
    """When ``agent_id``'s next renewal is due, in monotonic seconds (:attr:`due`).

    Args:
        agent_id: whose events count.
        idle_check: seconds between two renewals while nothing is held (a safety net:
            a claim's event brings the renewal forward).

    Not thread-safe: one keeper drives it.
    """

    def __init__(self, agent_id: str, *, idle_check: float) -> None:
        self.agent_id = agent_id
        self.idle_check = idle_check
        #: Monotonic seconds when the next renewal is due; at once at the start.
        self.due = -math.inf
        #: The length, seconds, of the shortest lease the last renewal extended.
        self.shortest: float | None = None

    def renewed(self, renewal: LeaseRenewal, now: float) -> None:
        """A renewal at ``now`` (monotonic) answered ``renewal``."""
        if renewal.next_in is None:
            self.shortest = None
            self.due = now + self.idle_check
        else:
            self.shortest = renewal.next_in / RENEW_FRACTION
            self.due = now + renewal.next_in

    def failed(self, now: float) -> None:
        """A renewal at ``now`` failed for a passing reason: try again soon."""
        pause = RETRY_SECONDS
        if self.shortest is not None:
            pause = min(pause, self.shortest * RENEW_FRACTION / 2)
        self.due = now + pause

    def saw(self, event: Event, now: float) -> None:
        """An event read at ``now``: a lease of this agent's taken or extended by
        someone else than the keeper brings the next renewal forward to a third of
        its length (a renewal's own events never do: theirs are no shorter)."""
        if event.agent_id != self.agent_id or event.kind not in LEASE_EVENTS:
            return
        expires = event.data.get("lease_expires_at")
        if not isinstance(expires, int | float):
            return
        length = max(float(expires) - event.created_at.timestamp(), 0.0)
        self.due = min(self.due, now + length * RENEW_FRACTION)


class LeaseKeeper:
    """Renews the leases ``handle``'s agent holds on a daemon thread, while it runs
    (see the module docstring).

    Args:
        handle: the agent (registered; its epoch fences the renewals).
        idle_check: seconds between renewals while nothing is held; default a third
            of the relay's ``lease_seconds``.

    Call :meth:`start`, and :meth:`stop` when the session ends (the process dying
    stops it too: that is the point). A fenced-off or removed agent stops it
    (logged); a relay that cannot be reached is tried again.
    """

    def __init__(self, handle: AgentHandle, *, idle_check: float | None = None) -> None:
        self.handle = handle
        settings = handle.relay.settings
        check = settings.lease_seconds * RENEW_FRACTION if idle_check is None else idle_check
        self.schedule = LeaseSchedule(handle.id, idle_check=check)
        #: Renewals made, and the ids of the tasks the last one renewed.
        self.renewals = 0
        self.held: list[int] = []
        #: Why the keeper stopped by itself (fenced off, removed), else None.
        self.error: RelayError | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relaybus-leases", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Stop renewing (the leases held then lapse unless renewed elsewhere); waits
        up to ``timeout`` seconds for the thread (a wait in progress ends within
        :data:`WAIT_SECONDS`)."""
        self._stopped.set()
        if timeout > 0 and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            cursor = self._as_agent(calls.last_event_id(workspace=self.handle.relay.workspace))
        except RelayError as exc:
            logger.warning("leases of %s: %s", self.handle.id, exc)
            cursor = 0
        while not self._stopped.is_set():
            try:
                cursor = self._turn(cursor)
            except FINAL as exc:
                if not self._stopped.is_set():
                    logger.warning("stopped renewing the leases of %s: %s", self.handle.id, exc)
                    self.error = exc
                return
            except RelayError as exc:
                if self._stopped.is_set():
                    return
                logger.info("renewing the leases of %s: %s", self.handle.id, exc)
                self.schedule.failed(time.monotonic())
                self._stopped.wait(max(self.schedule.due - time.monotonic(), 0.0))
            except Exception:  # the thread's top-level boundary
                if self._stopped.is_set():
                    return  # the relay was closed under a wait
                logger.exception("renewing the leases of %s", self.handle.id)
                self._stopped.wait(RETRY_SECONDS)

    def _as_agent(self, call: Call[T]) -> T:
        # Read as the agent, with its token (a server in token mode gives an agent
        # token its own events only, which are the ones wanted).
        call.request.agent = self.handle.id
        return self.handle.relay.backend.run(call)

    def _turn(self, cursor: int) -> int:
        """Renew if due, then wait for the next due time or a lease event; the
        event cursor after it."""
        if time.monotonic() >= self.schedule.due:
            renewal = self.handle.renew_held()
            self.renewals += 1
            self.held = renewal.renewed
            self.schedule.renewed(renewal, time.monotonic())
        wait = min(max(self.schedule.due - time.monotonic(), 0.0), WAIT_SECONDS)
        if wait <= 0:
            return cursor
        relay = self.handle.relay
        wait = min(wait, relay.backend.wait_step)
        found = self._as_agent(
            calls.wait_events(wait, workspace=relay.workspace, since=cursor, kinds=LEASE_EVENTS)
        )
        now = time.monotonic()
        for event in found:
            cursor = max(cursor, event.id)
            self.schedule.saw(event, now)
        return cursor
