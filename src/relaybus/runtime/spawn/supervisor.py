"""The supervisor of spawned agents (issue 19): the warm local relay starts agent
programs for its callers and keeps them running after those callers exit
(agent-relay's broker ``spawn_pty``/``spawn_headless``).

:class:`Supervisor` lives on the warm relay's event loop (``app.state.supervisor``,
made on the first spawn request: see :mod:`relaybus.server.routes.spawned`). It
keeps the spawned agents of every workspace by workspace and name
(:class:`~.agent.SpawnedAgentProcess`), and tells the relay what happens to them:
``agent.spawned``/``idle``/``exited``/``restarted``/``released`` events in the event
log (so ``watch``, the streams and the dashboard show them), a headless agent's
registration and its going offline, a headless agent's task finished from its exit
when the program did not finish it.

PTY mode runs ``relaybus run --name NAME … -- ARGV`` in the PTY: it registers the
agent, types its mail in when idle, and redelivers what a crashed run left unread
to the next run. Logs go to ``<relay folder>/spawned/NAME.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...errors import Conflict, InvalidInput, NotFound, RelayError
from ...models import AgentStatus, SpawnedAgent, SpawnedScreen, SpawnedState, SpawnEventKind
from ...service import Service
from ...service.common import append_event
from .agent import Hooks, SpawnedAgentProcess, plain_lines
from .spec import SpawnSpec, plan

logger = logging.getLogger("relaybus.spawn")

#: The folder of the logs, in the relay folder.
LOG_FOLDER = "spawned"
#: Seconds each spawned agent gets to stop when the warm relay shuts down.
SHUTDOWN_TIMEOUT = 3.0
#: The most lines ``logs`` returns, and the most bytes of the log it reads for them.
MAX_LOG_LINES = 10_000
LOG_READ_BYTES = 4 << 20
#: Task statuses that need nothing more.
FINISHED = frozenset({"done", "failed", "canceled"})


class Supervisor:
    """Spawned agents of a relay folder's warm relay (see the module docstring).

    Args:
        service: the relay's service (its store: the events, registrations, tasks).
        relay_dir: the relay folder (the programs' ``RELAYBUS_DIR``; the logs).
    """

    def __init__(self, service: Service, relay_dir: Path) -> None:
        self.service = service
        self.relay_dir = Path(relay_dir)
        self._agents: dict[tuple[str, str], SpawnedAgentProcess] = {}
        self._hooks = Hooks(event=self._event, started=self._started, finished=self._finished)
        self._closing = False

    @property
    def active(self) -> bool:
        """Whether any spawned agent runs (or is between runs): the warm relay stays."""
        return any(agent.active for agent in self._agents.values())

    def log_path(self, workspace: str, name: str) -> Path:
        """Where agent ``name``'s output goes: ``spawned/NAME.log`` (another workspace
        than ``default``: ``spawned/WORKSPACE/NAME.log``; ``/`` in a name is quoted)."""
        folder = self.relay_dir / LOG_FOLDER
        if workspace != "default":
            folder = folder / quote(workspace, safe="")
        return folder / f"{quote(name, safe='@')}.log"

    # -- the operations -----------------------------------------------------------------

    async def spawn(self, workspace: str, spec: SpawnSpec) -> SpawnedAgent:
        """Start ``spec`` as agent ``spec.name`` of ``workspace``.

        Raises:
            Conflict: an agent of that name runs already (or the relay is stopping).
            InvalidInput: a bad spec (see :func:`.spec.plan`), or the program could
                not be started.
        """
        if self._closing:
            raise Conflict("the warm relay is stopping: spawn again in a moment")
        key = (workspace, spec.name)
        found = self._agents.get(key)
        if found is not None and found.active:
            raise Conflict(
                f"{spec.name} runs already (pid {found.model().pid}): release it first",
                name=spec.name,
            )
        checked = plan(spec, workspace=workspace, relay_dir=self.relay_dir)
        agent = SpawnedAgentProcess(
            workspace, checked, self.log_path(workspace, spec.name), self._hooks
        )
        self._agents[key] = agent  # before it starts: a second spawn of NAME is 409
        try:
            await agent.start()
        except OSError as exc:
            self._agents.pop(key, None)
            if spec.headless:  # registered before the start that failed
                await self._store(
                    f"marking {spec.name} offline", mark_offline, self.service, workspace, spec.name
                )
            reason = exc.strerror or str(exc)
            raise InvalidInput(f"cannot start {checked.command[0]}: {reason}") from None
        except BaseException:
            self._agents.pop(key, None)
            raise
        return agent.model()

    def agents(self, workspace: str) -> list[SpawnedAgent]:
        """The spawned agents of ``workspace`` by name (running or not)."""
        found = [a for (ws, _), a in self._agents.items() if ws == workspace]
        return [a.model() for a in sorted(found, key=lambda a: a.name)]

    def agent(self, workspace: str, name: str) -> SpawnedAgent:
        """Raises NotFound."""
        return self._get(workspace, name).model()

    async def release(
        self, workspace: str, name: str, *, reason: str | None = None, timeout: float = 10.0
    ) -> SpawnedAgent:
        """Stop agent ``name`` for good (see :meth:`.agent.SpawnedAgentProcess.release`);
        it goes offline. Releasing one that exited marks it released.

        Raises:
            NotFound: no such spawned agent. InvalidInput: a negative timeout.
        """
        if not timeout >= 0:
            raise InvalidInput(f"the timeout must be 0 or more seconds, not {timeout}")
        agent = self._get(workspace, name)
        if agent.state is SpawnedState.RELEASED:
            return agent.model()
        if agent.done.is_set():  # exited for good already
            agent.state = SpawnedState.RELEASED
            agent.release_reason = reason
            await self._event(agent, SpawnEventKind.RELEASED, reason=reason)
            return agent.model()
        await agent.release(reason, timeout)
        return agent.model()

    async def send_input(self, workspace: str, name: str, text: str, *, enter: bool) -> None:
        """Type ``text`` into agent ``name``'s terminal. Raises NotFound, Conflict."""
        await self._get(workspace, name).type_in(text, enter=enter)

    def screen(self, workspace: str, name: str) -> SpawnedScreen:
        """What agent ``name``'s terminal shows. Raises NotFound, Conflict (headless)."""
        return self._get(workspace, name).screen_model()

    def logs(self, workspace: str, name: str, lines: int = 200) -> list[str]:
        """The last ``lines`` lines of agent ``name``'s log (escape sequences removed).

        Raises:
            NotFound: no such spawned agent (and no log of it).
            InvalidInput: ``lines`` outside 0-10000.
        """
        if not 0 <= lines <= MAX_LOG_LINES:
            raise InvalidInput(f"lines is 0 to {MAX_LOG_LINES}, not {lines}")
        path = self.log_path(workspace, name)
        if (workspace, name) not in self._agents and not path.exists():
            raise NotFound(f"no spawned agent {name!r}", name=name)
        try:
            with open(path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(size - LOG_READ_BYTES, 0))
                data = log.read()
        except FileNotFoundError:
            return []
        found = plain_lines(data)
        if found and not found[-1]:
            found.pop()
        return found[-lines:] if lines else []

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Release every running agent (the warm relay is stopping), at once."""
        self._closing = True
        running = [a for a in self._agents.values() if a.active]
        await asyncio.gather(
            *(a.release("the warm relay stopped", timeout) for a in running),
            return_exceptions=True,
        )

    def _get(self, workspace: str, name: str) -> SpawnedAgentProcess:
        agent = self._agents.get((workspace, name))
        if agent is None:
            raise NotFound(f"no spawned agent {name!r}", name=name)
        return agent

    def __iter__(self) -> Iterator[SpawnedAgentProcess]:
        return iter(list(self._agents.values()))

    # -- what the relay hears ----------------------------------------------------------

    async def _event(self, agent: SpawnedAgentProcess, kind: SpawnEventKind, **extra: Any) -> None:
        child = agent.child
        data: dict[str, Any] = {
            "name": agent.name,
            "pid": None if child is None else child.pid,
            "restarts": agent.restarts,
        }
        data.update({k: v for k, v in extra.items() if v is not None})
        async with agent.events_lock:
            await self._store(
                f"agent.{kind.value} event of {agent.name}",
                append_spawn_event,
                self.service,
                agent.workspace,
                kind,
                agent.name,
                data,
            )

    async def _started(self, agent: SpawnedAgentProcess) -> None:
        """A headless agent is registered by the supervisor, before its program starts
        (its pid: the warm relay's, which reports for it); in a PTY ``relaybus run``
        registers it."""
        spec = agent.spec
        if not spec.headless:
            return
        tool = spec.cli or Path(agent.plan.command[0]).name
        await asyncio.to_thread(
            self.service.register,
            spec.name,
            workspace=agent.workspace,
            tags=spec.tags,
            capabilities=spec.capabilities,
            channels=spec.channels,
            pid=os.getpid(),
            cwd=agent.plan.cwd,
            meta={
                "runtime": "spawn",
                "headless": True,
                "command": shlex.join(agent.plan.command)[:200],
            },
            instance_id=f"spawn-{secrets.token_hex(6)}",
            tool=tool[:64] or "agent",
            approval=spec.approval,
        )

    async def _finished(self, agent: SpawnedAgentProcess, output: str) -> None:
        """The program exited for good (or was released): the agent goes offline; a
        headless agent's task it left open is finished from its exit."""
        spec, workspace = agent.spec, agent.workspace
        if spec.headless and spec.task_id is not None and agent.exit_code is not None:
            await self._store(
                f"finishing task {spec.task_id} of {agent.name}",
                finish_task,
                self.service,
                workspace,
                spec.task_id,
                agent.exit_code,
                output,
                agent.last_lines,
            )
        await self._store(
            f"marking {agent.name} offline",
            mark_offline,
            self.service,
            workspace,
            agent.name,
        )

    async def _store(self, what: str, function: Any, *args: Any) -> None:
        """Run a store write in a worker thread; a refusal is logged, not raised (the
        supervisor goes on)."""
        try:
            await asyncio.to_thread(function, *args)
        except RelayError as exc:
            logger.warning("relaybus: %s: %s", what, exc.message)
        except Exception:  # the supervisor's boundary: one agent's bookkeeping
            logger.exception("relaybus: %s failed", what)


def append_spawn_event(
    service: Service, workspace: str, kind: SpawnEventKind, name: str, data: dict[str, Any]
) -> int:
    """Append an ``agent.<kind>`` event of spawned agent ``name`` to the event log
    (its own transaction); returns its id."""
    with service.store.write() as conn:
        return append_event(conn, workspace, f"agent.{kind.value}", service.now(), name, **data)


def mark_offline(service: Service, workspace: str, name: str) -> None:
    """Agent ``name`` is offline (nothing if it is gone or offline already)."""
    with contextlib.suppress(NotFound):
        if service.get_agent(name, workspace=workspace).status != AgentStatus.OFFLINE:
            service.update_agent(name, workspace=workspace, status=AgentStatus.OFFLINE)


def finish_task(
    service: Service,
    workspace: str,
    task_id: int,
    code: int,
    output: str,
    last_lines: list[str],
) -> None:
    """Finish task ``task_id`` from a headless program's exit, unless it is finished
    already: exit 0 → done, its result the output's last 4000 characters (stripped);
    otherwise failed, the last lines as its note. As the operator."""
    from .agent import RESULT_CHARS

    task = service.get_task(task_id, workspace=workspace)
    if str(task.status) in FINISHED:
        return
    if code == 0:
        text = "\n".join(plain_lines(output.encode("utf-8"))).strip()[-RESULT_CHARS:].strip()
        service.update_task(task_id, None, workspace=workspace, status="done", result=text or None)
    else:
        how = f"exited with {code}" if code > 0 else f"was killed by signal {-code}"
        note = "\n".join([f"the program {how}", *last_lines])[-RESULT_CHARS:]
        service.update_task(task_id, None, workspace=workspace, status="failed", note=note)
