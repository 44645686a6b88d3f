"""What the SDK needs from a relay: :class:`ServiceAPI`, the interface both the
embedded :class:`~relaybus.service.Service` and the network
:class:`~relaybus.client.remote.RemoteService` offer. :class:`~relaybus.client.Relay`
is typed with it, so mypy keeps the two in step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..models import (
    Agent,
    AgentStatus,
    Delivery,
    DeliveryState,
    Event,
    Message,
    Priority,
    PruneReport,
    Task,
    TaskEvent,
    Via,
)
from ..settings import Settings

if TYPE_CHECKING:
    from ..store import Store


class ServiceAPI(Protocol):
    """The relay operations the SDK and the CLI use, embedded or over the network.

    The semantics, arguments and errors are those of :class:`relaybus.service.Service`
    (see its methods' docstrings); times are seconds, ``workspace`` selects the
    namespace, ``epoch`` fences an agent's calls.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store:
        """The database (embedded only). Raises InvalidInput over the network."""
        ...

    def close(self) -> None:
        """Release the database or the server connections."""

    def register(
        self,
        agent_id: str | None = None,
        *,
        workspace: str = "default",
        label: str | None = None,
        tags: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        channels: Sequence[str] = (),
        pid: int | None = None,
        host: str | None = None,
        cwd: str | None = None,
        meta: Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        tool: str = "agent",
    ) -> Agent: ...

    def heartbeat(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: AgentStatus | str | None = None,
    ) -> Agent: ...

    def update_agent(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        label: str | None = None,
        tags: Sequence[str] | None = None,
        capabilities: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        status: AgentStatus | str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Agent: ...

    def unregister(
        self, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> None: ...

    def get_agent(self, agent_id: str, *, workspace: str = "default") -> Agent: ...

    def list_agents(
        self,
        *,
        workspace: str = "default",
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]: ...

    def sweep(self, *, workspace: str = "default") -> dict[str, int]: ...

    def send(
        self,
        sender: str,
        to: str | None,
        body: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        subject: str | None = None,
        channel: str | None = None,
        reply_to: int | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        idempotency_key: str | None = None,
    ) -> Message: ...

    def send_many(
        self,
        sender: str,
        items: Sequence[Mapping[str, Any]],
        *,
        workspace: str = "default",
        epoch: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[Message]: ...

    def get_message(self, message_id: int, *, workspace: str = "default") -> Message: ...

    def thread(self, message_id: int, *, workspace: str = "default") -> list[Message]: ...

    def inbox(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]: ...

    def mark_read(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        ids: Sequence[int] | None = None,
        up_to: int | None = None,
        epoch: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int: ...

    def mark_delivered(
        self,
        agent_id: str,
        ids: Sequence[int],
        *,
        via: Via | str,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> int: ...

    def deliveries(self, message_id: int, *, workspace: str = "default") -> list[Delivery]: ...

    def wait_deliveries(
        self,
        message_id: int,
        state: DeliveryState | str,
        timeout: float,
        *,
        workspace: str = "default",
    ) -> list[Delivery]: ...

    def unread_count(self, agent_id: str, *, workspace: str = "default") -> int: ...

    def wait(
        self,
        agent_id: str,
        timeout: float,
        *,
        workspace: str = "default",
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]: ...

    def claim(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task: ...

    def renew(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task: ...

    def release(
        self, task_id: int, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> Task: ...

    def update_task(
        self,
        task_id: int,
        agent_id: str | None,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task: ...

    def get_task(
        self,
        task_id: int,
        *,
        workspace: str = "default",
        sweep: bool = True,
        viewer: str | None = None,
    ) -> Task: ...

    def list_tasks(
        self,
        *,
        workspace: str = "default",
        status: str | None = None,
        assignee: str | None = None,
        limit: int = 100,
        viewer: str | None = None,
    ) -> list[Task]: ...

    def task_history(
        self, task_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> list[TaskEvent]: ...

    def events(
        self,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]: ...

    def last_event_id(self, *, workspace: str = "default") -> int: ...

    def wait_events(
        self,
        timeout: float,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]: ...

    def prune(
        self,
        *,
        workspace: str = "default",
        message_days: float | None = None,
        agent_days: float | None = None,
    ) -> PruneReport: ...
