# Generated from aio_spawn.py by scripts/unasync.py: do not edit. Edit aio_spawn.py
# (the async source) and run `python scripts/unasync.py`; CI checks they agree.
"""Spawned agents from the SDK (issue 19): :class:`SpawnView`, the relay's
methods that start agent programs the warm local relay supervises, release them, type
into them, read their screens and logs, and follow their events.

>>> agent = relay.spawn("reviewer", cli="claude", model="sonnet", capabilities=["review"])
>>> relay.send_input("reviewer", "/status", enter=True)
>>> print("\\n".join((relay.screen("reviewer")).lines))
>>> for event in relay.spawn_events(timeout=60):
...     print(event.kind, event.name, event.code)
>>> relay.release("reviewer", reason="done")

The programs outlive the process that spawned them: the warm local relay of the relay
folder runs them (an embedded relay sends these calls to it, starting it when none
runs; with ``RELAYBUS_DAEMON=0`` they raise :class:`~relaybus.errors.RelayError`). A
relay server supervises nothing unless it is a warm relay (``relaybus serve`` answers
501).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar, overload

from ..errors import InvalidInput
from ..models import (
    Preflight,
    RestartPolicy,
    SpawnedAgent,
    SpawnedScreen,
    SpawnEvent,
    SpawnEventKind,
    Task,
)
from . import calls
from .calls.spawned import Offload, WarmRunner
from .calls.spawned import get_spawned as _get_spawned
from .calls.spawned import list_spawned as _list_spawned
from .calls.spawned import logs as _logs
from .calls.spawned import release_spawned as _release_spawned
from .calls.spawned import screen as _screen
from .calls.spawned import send_input as _send_input
from .calls.spawned import spawn as _spawn
from .handle import TasksView
from .transport import Call

if TYPE_CHECKING:
    from .backends import Backend

T = TypeVar("T")

#: The event log's kinds of spawned agents' events (``agent.spawned``…).
#: Events read at a time (the service's default page).
PAGE = 100
SPAWN_EVENT_KINDS = tuple(f"agent.{kind.value}" for kind in SpawnEventKind)


class SpawnView(TasksView):
    """Spawning agent programs (see the module docstring); ``release`` also gives a
    task back, as on :class:`~relaybus.client.handle.TasksView`."""

    backend: Backend

    def _spawner(self) -> Backend | WarmRunner:
        """Where the spawn calls run: the relay's own backend over HTTP (a server, or
        the warm relay itself), else the warm relay of the embedded store's folder."""
        runner: Backend | WarmRunner | None = self.__dict__.get("_spawn_runner")
        if runner is None:
            backend = self.backend
            if backend.url is not None or getattr(backend, "relay_dir", None) is not None:
                runner = backend
            else:
                runner = WarmRunner(backend)
            self.__dict__["_spawn_runner"] = runner
        return runner

    def _spawn_call(self, call: Call[T]) -> T:
        return self._spawner().run(call)

    def spawn(
        self,
        name: str,
        *,
        cli: str | None = None,
        command: Sequence[str] | None = None,
        model: str | None = None,
        task: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        tags: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        channels: Sequence[str] = (),
        restart: RestartPolicy | str = "no",
        headless: bool = False,
        approval: str | None = None,
        env: Mapping[str, str] | None = None,
        task_id: int | None = None,
        preflight: bool = True,
        idle_seconds: float | None = None,
    ) -> SpawnedAgent:
        """Start agent ``name`` under the warm local relay and return it (running).

        Exactly one of ``cli`` (a preset: claude, codex, gemini, opencode, started with
        ``model``, ``approval`` and, headless, ``task`` as its prompt) and ``command``
        (any argv). In a PTY (the default) it runs under ``relaybus run``: registered
        as ``name`` with ``tags``/``capabilities``/``channels``, its mail typed in when
        idle, ``task`` typed in at its first idle moment (unless the preset took it as
        an argument). ``headless``: no terminal, output to the log; with ``task_id``
        the task is finished from its exit status and output if it did not finish it.
        ``restart``: ``no``, ``on-failure`` or ``always``. ``cwd`` defaults to this
        process's; the program's environment is this process's plus ``env``.
        ``preflight`` (with ``cli``): check first that the CLI answers ``--version``.
        ``idle_seconds``: the quiet window of the ``idle`` event (default 0.75 s).

        Raises:
            InvalidInput: neither or both of ``cli``/``command``, an unknown CLI, a
                missing ``cwd`` or command, a CLI that fails its preflight.
            Conflict: an agent of that name runs already.
            RelayError: no warm relay can spawn (``RELAYBUS_DAEMON=0``, or a
                ``relaybus serve`` server: 501).
        """
        if cli is not None and preflight:
            checked = self.preflight([cli], env=env)
            if checked and not checked[0].ok:
                raise InvalidInput(f"{cli}: {checked[0].error or 'not usable'}", cli=cli)
        where = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
        return self._spawn_call(
            _spawn(
                name,
                workspace=self._workspace,
                cli=cli,
                command=command,
                model=model,
                task=task,
                cwd=where,
                tags=tags,
                capabilities=capabilities,
                channels=channels,
                restart=str(restart),
                headless=headless,
                approval=approval,
                env={**os.environ, **(env or {})},
                task_id=task_id,
                idle_seconds=idle_seconds,
            )
        )

    @overload
    def release(self, target: int) -> Task: ...

    @overload
    def release(
        self, target: str, *, reason: str | None = None, timeout: float = 10.0
    ) -> SpawnedAgent: ...

    def release(
        self, target: int | str, *, reason: str | None = None, timeout: float = 10.0
    ) -> Task | SpawnedAgent:
        """Release a task (an int: the operator gives it back, open again; see
        :meth:`TasksView.release <relaybus.client.handle.TasksView.release>`)
        or a spawned agent (a str, its name): SIGTERM, then SIGKILL after ``timeout``
        seconds; it is not restarted and goes offline. ``reason`` is in its
        ``released`` event. Raises NotFound, Conflict (a task nobody holds)."""
        if isinstance(target, int):
            return super().release(target)
        return self._spawn_call(
            _release_spawned(target, workspace=self._workspace, reason=reason, timeout=timeout)
        )

    def send_input(self, name: str, text: str, *, enter: bool = False) -> None:
        """Type ``text`` (raw: ``"\\x03"`` is Ctrl-C) into a spawned agent's terminal,
        then Enter when ``enter``. Raises NotFound, Conflict (not running, or headless)."""
        self._spawn_call(_send_input(name, text, workspace=self._workspace, enter=enter))

    def screen(self, name: str) -> SpawnedScreen:
        """What a spawned agent's terminal shows now. Raises NotFound, Conflict
        (headless: no terminal)."""
        return self._spawn_call(_screen(name, workspace=self._workspace))

    def logs(self, name: str, *, lines: int = 200) -> list[str]:
        """The last ``lines`` lines of a spawned agent's output (its log). Raises NotFound."""
        return self._spawn_call(_logs(name, workspace=self._workspace, lines=lines))

    def spawned(self) -> list[SpawnedAgent]:
        """The spawned agents of this workspace (running, restarting, exited, released)."""
        return self._spawn_call(_list_spawned(workspace=self._workspace))

    def spawned_agent(self, name: str) -> SpawnedAgent:
        """One spawned agent. Raises NotFound."""
        return self._spawn_call(_get_spawned(name, workspace=self._workspace))

    def spawn_events(
        self, *, after: int | None = None, timeout: float | None = None
    ) -> Generator[SpawnEvent, None, None]:
        """Spawned agents' events (spawned, idle, exited, restarted, released) from the
        event log, oldest first: after the event id ``after`` (default: from now on),
        for ``timeout`` seconds (default: for ever; break to stop)."""
        since = (
            self._run(calls.last_event_id(workspace=self._workspace)) if after is None else after
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        step = self.backend.wait_step
        while True:
            left = step if deadline is None else max(min(step, deadline - time.monotonic()), 0)
            found = self._run(
                calls.wait_events(
                    left, workspace=self._workspace, since=since, kinds=SPAWN_EVENT_KINDS
                )
            )
            for event in found:
                since = event.id
                data = {k: v for k, v in event.data.items() if k in SpawnEvent.model_fields}
                data.setdefault("name", event.agent_id or "")
                kind = SpawnEventKind(event.kind.removeprefix("agent."))
                yield SpawnEvent(**{**data, "id": event.id, "kind": kind, "at": event.created_at})
            if deadline is not None and time.monotonic() >= deadline and len(found) < PAGE:
                return

    def preflight(
        self, clis: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> list[Preflight]:
        """Whether each agent CLI is on the PATH and answers ``--version`` (run here,
        each at most 10 s; see :func:`relaybus.presets.preflight`)."""
        from .. import presets  # the SDK's import does not pay for it

        merged = {**os.environ, **(env or {})}
        check = functools.partial(presets.preflight, env=merged)
        found: list[Preflight] = Offload()(check, list(clis))
        return found
