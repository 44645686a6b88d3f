"""The Python SDK: :class:`Relay` and the :class:`AgentHandle` an agent acts through.

>>> relay = Relay.open()                                  # .relay/ of this repository
>>> me = relay.register("alice", capabilities=["review"])
>>> me.send("bob", "I'm refactoring auth, stay out of src/auth")
>>> for msg in me.wait(timeout=30):
...     me.reply(msg, "on it")

Every method raises subclasses of :class:`relaybus.errors.RelayError`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInput
from ..models import Agent, AgentStatus, Event, Message, Priority, PruneReport, Task, TaskEvent
from ..service import Service
from ..settings import Settings
from ..store import Store, open_store


class Relay:
    """A connection to a relay: the embedded store of this repository by default.

    Thread-safe; one per process is enough. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, service: Service, *, workspace: str | None = None) -> None:
        self.service = service
        self.workspace = workspace or service.settings.workspace

    @classmethod
    def open(
        cls,
        *,
        dir: str | Path | None = None,
        database: str | None = None,
        workspace: str | None = None,
        settings: Settings | None = None,
    ) -> Relay:
        """Open the relay the environment points at.

        ``database`` (a SQLAlchemy URL) wins over ``dir`` (a relay folder),
        which wins over ``RELAYBUS_DATABASE`` / ``RELAYBUS_DIR`` and then the
        ``.relay/`` folder of the repository around the cwd (created on first
        use, schema migrated).

        Raises:
            StoreError: the database cannot be opened or migrated.
            InvalidInput: ``RELAYBUS_URL`` is set; talking to a server arrives
                with the relay server.
        """
        settings = settings or Settings()
        updates: dict[str, Any] = {}
        if dir is not None:
            updates["dir"] = Path(dir)
            updates["database"] = None  # an explicit folder beats RELAYBUS_DATABASE
        if database is not None:
            updates["database"] = database
        settings = settings.model_copy(update=updates)
        if settings.url and not (dir or database):
            raise InvalidInput(
                f"RELAYBUS_URL={settings.url} is set, but this relaybus only has the embedded "
                "store; unset it to use .relay/ here"
            )
        return cls(Service(open_store(settings)), workspace=workspace)

    @property
    def store(self) -> Store:
        return self.service.store

    # -- agents ------------------------------------------------------------

    def register(
        self,
        agent_id: str | None = None,
        *,
        label: str | None = None,
        tags: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        channels: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        pid: int | None | Literal["current"] = "current",
        instance_id: str | None = None,
        tool: str = "python",
    ) -> AgentHandle:
        """Register this process as an agent and return its handle.

        ``pid`` defaults to this process, so the agent reads as offline once
        the process is gone; ``None`` records no pid (presence then rests on
        heartbeats alone, e.g. for a short-lived CLI call). ``instance_id``
        defaults to a fresh id: each registration is a new instance that
        fences off the previous one.

        Raises:
            InvalidInput: a malformed id, tag, capability or channel.
        """
        agent = self.service.register(
            agent_id,
            workspace=self.workspace,
            label=label,
            tags=tags,
            capabilities=capabilities,
            channels=channels,
            meta=meta,
            pid=os.getpid() if pid == "current" else pid,
            instance_id=instance_id or uuid.uuid4().hex,
            tool=tool,
        )
        return AgentHandle(self, agent.id, agent.epoch)

    def agent(self, agent_id: str, *, epoch: int | None = None) -> AgentHandle:
        """A handle acting as an existing agent (no registration, no fencing
        unless ``epoch`` is given).

        Raises:
            NotFound: no such agent.
        """
        self.service.get_agent(agent_id, workspace=self.workspace)
        return AgentHandle(self, agent_id, epoch)

    def agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]:
        """Registered agents with their effective status, by id."""
        return self.service.list_agents(
            workspace=self.workspace,
            status=status,
            tag=tag,
            capability=capability,
            channel=channel,
            online_only=online_only,
        )

    def get_agent(self, agent_id: str) -> Agent:
        """One agent. Raises NotFound."""
        return self.service.get_agent(agent_id, workspace=self.workspace)

    # -- messages, tasks, events ---------------------------------------------

    def message(self, message_id: int) -> Message:
        """One message with its recipients. Raises NotFound."""
        return self.service.get_message(message_id, workspace=self.workspace)

    def thread(self, message_id: int) -> list[Message]:
        """The whole thread of any of its messages, oldest first. Raises NotFound."""
        return self.service.thread(message_id, workspace=self.workspace)

    def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[Task]:
        """Tasks, newest first."""
        return self.service.list_tasks(
            workspace=self.workspace, status=status, assignee=assignee, limit=limit
        )

    def task(self, task_id: int) -> Task:
        """One task. Raises NotFound."""
        return self.service.get_task(task_id, workspace=self.workspace)

    def task_history(self, task_id: int) -> list[TaskEvent]:
        """A task's history, oldest first. Raises NotFound."""
        return self.service.task_history(task_id, workspace=self.workspace)

    def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Change a task as the workspace operator (not as an agent)."""
        return self.service.update_task(
            task_id,
            None,
            workspace=self.workspace,
            status=status,
            progress=progress,
            note=note,
            result=result,
        )

    def events(self, *, since: int = 0, limit: int = 100) -> list[Event]:
        """Event log entries above the cursor ``since``."""
        return self.service.events(workspace=self.workspace, since=since, limit=limit)

    def wait_events(
        self,
        timeout: float,
        *,
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Block up to ``timeout`` seconds for events above ``since`` (optionally
        only of ``kinds``; ``"task."`` matches a family)."""
        return self.service.wait_events(
            timeout, workspace=self.workspace, since=since, limit=limit, kinds=kinds
        )

    def prune(
        self, *, message_days: float | None = None, agent_days: float | None = None
    ) -> PruneReport:
        """Apply retention (see :meth:`Service.prune`)."""
        return self.service.prune(
            workspace=self.workspace, message_days=message_days, agent_days=agent_days
        )

    def close(self) -> None:
        self.service.store.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AgentHandle:
    """Acting as one agent: send, read, wait, claim. Carries the agent's epoch,
    so a handle fenced off by a newer registration gets Conflict.

    ``cursor`` is the highest message id this handle has returned from
    :meth:`inbox` or :meth:`wait`; :meth:`wait` waits for mail above it.
    """

    def __init__(self, relay: Relay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch
        self.cursor = 0

    @property
    def _kw(self) -> dict[str, Any]:
        return {"workspace": self.relay.workspace, "epoch": self.epoch}

    def info(self) -> Agent:
        """This agent as the relay sees it."""
        return self.relay.service.get_agent(self.id, workspace=self.relay.workspace)

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        channel: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        reply_to: int | None = None,
    ) -> Message:
        """Send a message (see :meth:`Service.send` for targets and errors)."""
        return self.relay.service.send(
            self.id,
            to,
            body,
            subject=subject,
            channel=channel,
            priority=priority,
            meta=meta,
            claimable=claimable,
            reply_to=reply_to,
            **self._kw,
        )

    def reply(self, message: Message | int, body: str, **kwargs: Any) -> Message:
        """Answer ``message`` in its thread, to its sender (or, for one's own
        message, to its target) unless ``to=`` says otherwise; other keywords
        as for :meth:`send`."""
        parent = message.id if isinstance(message, Message) else message
        to = kwargs.pop("to", None)  # a reply may be redirected, e.g. to the whole channel
        return self.relay.service.send(self.id, to, body, reply_to=parent, **kwargs, **self._kw)

    def inbox(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
    ) -> list[Message]:
        """Messages delivered to this agent; only marks them read if asked."""
        found = self.relay.service.inbox(
            self.id,
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=mark_read,
            **self._kw,
        )
        self._advance(found)
        return found

    def read(self, **kwargs: Any) -> list[Message]:
        """:meth:`inbox` that marks what it returns read."""
        return self.inbox(mark_read=True, **kwargs)

    def mark_read(self, ids: Sequence[int] | None = None, *, up_to: int | None = None) -> int:
        """Mark messages read by id, or all up to a cursor; returns how many changed."""
        return self.relay.service.mark_read(self.id, ids=ids, up_to=up_to, **self._kw)

    def unread_count(self) -> int:
        return self.relay.service.unread_count(self.id, workspace=self.relay.workspace)

    def wait(
        self, timeout: float = 30.0, *, since: int | None = None, mark_read: bool = False
    ) -> list[Message]:
        """Block up to ``timeout`` seconds for unread mail above ``since``
        (default: this handle's :attr:`cursor`); oldest first, empty on timeout."""
        found = self.relay.service.wait(
            self.id,
            timeout,
            since=self.cursor if since is None else since,
            mark_read=mark_read,
            **self._kw,
        )
        self._advance(found)
        return found

    def claim(self, task_id: int, *, lease: float | None = None) -> Task:
        """Claim a task. Raises Conflict (with ``details["holder"]``) if taken."""
        return self.relay.service.claim(task_id, self.id, lease=lease, **self._kw)

    def renew(self, task_id: int, *, lease: float | None = None) -> Task:
        return self.relay.service.renew(task_id, self.id, lease=lease, **self._kw)

    def release(self, task_id: int) -> Task:
        return self.relay.service.release(task_id, self.id, **self._kw)

    def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Report status, progress (0–100, with a note) or a result on a task."""
        return self.relay.service.update_task(
            task_id,
            self.id,
            status=status,
            progress=progress,
            note=note,
            result=result,
            **self._kw,
        )

    def heartbeat(self, status: AgentStatus | str | None = None) -> Agent:
        return self.relay.service.heartbeat(self.id, status=status, **self._kw)

    def update(self, **changes: Any) -> Agent:
        """Change label, tags, capabilities, channels, status or meta."""
        return self.relay.service.update_agent(self.id, **changes, **self._kw)

    def unregister(self) -> None:
        self.relay.service.unregister(self.id, **self._kw)

    def _advance(self, found: list[Message]) -> None:
        if found:
            self.cursor = max(self.cursor, max(m.id for m in found))

    def __repr__(self) -> str:
        return f"AgentHandle({self.id!r}, epoch={self.epoch})"
