"""The leases of the agents of live MCP sessions on a relay server (:class:`SessionLeases`),
renewed while their sessions are open.

A bridged coding-agent session (``relaybus mcp`` on the warm local relay) lives in
the server (:mod:`.mcp_agents`), so the server renews what its agent holds; the
bridge process keeps a request open (its ``GET /mcp`` stream) for as long as it lives,
so "open" is "a request of the session in flight": once the bridge dies (killed, its
terminal closed) its connection drops, the renewals stop and the leases lapse within
one lease. One task serves every session: it renews each agent's leases when due
(:class:`~relaybus.client.leases.LeaseSchedule`: a third of the shortest lease held),
and between renewals waits on the hub for the agents' own ``task.claimed`` /
``task.renewed`` events (a claim by the session's tool call, by ``relaybus claim`` in
its shell) or for a session to come back to life, never on a short timer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import anyio

from ..client.leases import FINAL, LEASE_EVENTS, RENEW_FRACTION, WAIT_SECONDS, LeaseSchedule
from ..errors import RelayError
from ..mcp.session import AgentSession, blocking
from ..models import Event

if TYPE_CHECKING:
    from ..service import Service
    from .hub import Hub

logger = logging.getLogger("relaybus.mcp")

#: One agent: (workspace, agent id).
Key = tuple[str, str]


class SessionLeases:
    """Renews the leases of the agents that ``live()`` names (see the module docstring).

    Args:
        service, hub: the server's.
        live: the agents of the sessions open now (called on the event loop).

    Run :meth:`run` in the runtime's task group; call :meth:`wake` when a session may
    have come back to life (a request began).
    """

    def __init__(
        self, service: Service, hub: Hub, live: Callable[[], Iterable[AgentSession]]
    ) -> None:
        self.service, self.hub, self.live = service, hub, live
        self.idle_check = service.settings.lease_seconds * RENEW_FRACTION
        self.schedules: dict[Key, LeaseSchedule] = {}
        self._cursors: dict[str, int] = {}
        self._woken = anyio.Event()

    def wake(self) -> None:
        """A session may have come back: look at the live agents again now."""
        self._woken.set()

    async def run(self) -> None:
        """Renew for ever (cancel to stop)."""
        while True:
            agents = {(a.handle.relay.workspace, a.id): a for a in self.live()}
            for key in set(self.schedules) - set(agents):
                del self.schedules[key]  # its session ended or is between requests
            for key, agent in agents.items():
                await self._renew_if_due(key, agent)
            await self._wait(agents)

    async def _renew_if_due(self, key: Key, agent: AgentSession) -> None:
        schedule = self.schedules.get(key)
        if schedule is None:
            schedule = self.schedules[key] = LeaseSchedule(key[1], idle_check=self.idle_check)
            await self._cursor(key[0])
        if anyio.current_time() < schedule.due:
            return
        try:
            renewal = await blocking(agent.handle.renew_held)
        except FINAL as exc:  # fenced off by a newer session, removed
            logger.info("not renewing the leases of %s: %s", agent.id, exc)
            schedule.due = math.inf
            return
        except RelayError as exc:
            logger.warning("renewing the leases of %s: %s", agent.id, exc)
            schedule.failed(anyio.current_time())
            return
        schedule.renewed(renewal, anyio.current_time())

    async def _cursor(self, workspace: str) -> None:
        if workspace not in self._cursors:
            self._cursors[workspace] = await blocking(
                lambda: self.service.last_event_id(workspace=workspace)
            )

    async def _wait(self, agents: dict[Key, AgentSession]) -> None:
        """Until the next renewal is due, a lease event of a live agent, or :meth:`wake`."""
        due = min((s.due for s in self.schedules.values()), default=math.inf)
        timeout = min(max(due - anyio.current_time(), 0.0), WAIT_SECONDS)
        if timeout <= 0:
            return
        if not agents:  # nothing to renew until a session's agent is live
            with anyio.move_on_after(WAIT_SECONDS):
                await self._woken.wait()
            self._woken = anyio.Event()
            return
        workspaces = sorted({workspace for workspace, _ in agents})
        service, cursors = self.service, dict(self._cursors)

        def check() -> list[Event]:
            found: list[Event] = []
            for workspace in workspaces:
                since = cursors.get(workspace, 0)
                found += service.events(workspace=workspace, since=since, kinds=LEASE_EVENTS)
            return found

        found: list[Event] = []
        woken = self._woken
        async with anyio.create_task_group() as tg:

            async def events() -> None:
                found.extend(await self.hub.wait_for(check, timeout))
                tg.cancel_scope.cancel()

            async def wake() -> None:
                await woken.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(events)
            tg.start_soon(wake)
        if woken.is_set():
            self._woken = anyio.Event()
        now = anyio.current_time()
        for event in found:
            self._cursors[event.workspace] = max(self._cursors.get(event.workspace, 0), event.id)
            schedule = self.schedules.get((event.workspace, event.agent_id or ""))
            if schedule is not None:
                schedule.saw(event, now)
