"""The handle an agent acts through: :class:`AsyncAgentHandle` (send, read, wait,
claim, receipts), from :meth:`relaybus.AsyncRelay.register` or
:meth:`relaybus.AsyncRelay.agent`.
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import Conflict, NotFound
from ..models import (
    Agent,
    AgentStatus,
    Approval,
    Event,
    LeaseRenewal,
    Message,
    Priority,
    Task,
    TaskEvent,
    Via,
)
from . import calls
from .aio_messages import AsyncMessagesView
from .aio_pairs import AsyncPairActions
from .aio_view import AsyncView
from .transport import BACKOFF_CAP, Call, StreamQuery, delivered_to

if TYPE_CHECKING:
    from .aio import AsyncRelay

T = TypeVar("T")

#: Inbox page size when catching up on unread mail.
PAGE = 1000


class AsyncTasksView(AsyncView):
    """Tasks as one party sees them, and its reports on them: the workspace operator
    (:class:`~relaybus.client.aio.AsyncRelay`: every task of the workspace, changed as
    the operator) or one agent (:class:`AsyncAgentHandle`: the tasks it may see,
    changed as that agent, fenced by its epoch)."""

    @property
    @abstractmethod
    def _epoch(self) -> int | None:
        """That agent's epoch (fencing), ``None`` for none."""

    async def tasks(
        self,
        *,
        status: str | None = None,
        assignee: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, newest first: on a relay every task of its workspace; on an agent's
        handle those the agent may see (it created, holds, or received the message of).
        ``before``: only older ids (the next page: the last id of this one); ``limit``:
        at most this many (1-1000)."""
        return await self._run(
            calls.list_tasks(
                workspace=self._workspace,
                status=status,
                assignee=assignee,
                before=before,
                limit=limit,
                viewer=self._agent,
            )
        )

    async def task(self, task_id: int) -> Task:
        """One task (on an agent's handle: one the agent may see). Raises NotFound (also
        for a task the agent may not see)."""
        return await self._run(
            calls.get_task(task_id, workspace=self._workspace, viewer=self._agent)
        )

    async def task_history(self, task_id: int) -> list[TaskEvent]:
        """A task's history, oldest first (on an agent's handle: of a task the agent may
        see). Raises NotFound."""
        return await self._run(
            calls.task_history(task_id, workspace=self._workspace, viewer=self._agent)
        )

    async def history(
        self,
        *,
        channel: str | None = None,
        broadcast: bool = False,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Broadcasts sent whenever, newest first, without them entering an inbox: on an
        agent's handle those without a channel or on a channel the agent hears (for an
        agent that joined late); on a relay every broadcast of the workspace.

        Args:
            channel: only this channel's (an agent must hear it: Forbidden otherwise).
            broadcast: only the workspace-wide ones (without a channel).
            before: only older ids (the next page: the last id of this one).
            limit: at most this many (1-1000).
        """
        return await self._run(
            calls.history(
                self._agent,
                workspace=self._workspace,
                channel=channel,
                broadcast=broadcast,
                before=before,
                limit=limit,
            )
        )

    async def create_task(
        self,
        title: str,
        *,
        to: str,
        body: str | None = None,
        channel: str | None = None,
        meta: Mapping[str, Any] | None = None,
        external_url: str | None = None,
        priority: str = "normal",
        dedupe_key: str | None = None,
        source: str | None = None,
    ) -> Task:
        """Open a task and the claimable message offering it to ``to`` (a target
        expression): on an agent's handle from that agent, on a relay from the operator.
        ``meta`` and ``external_url`` stay with the task. Raises NotFound (nobody
        matches ``to``), Conflict (an active task has ``dedupe_key``), InvalidInput."""
        return await self._run(
            calls.open_task(
                workspace=self._workspace,
                title=title,
                target=to,
                creator=self._agent,
                epoch=self._epoch,
                body=body,
                channel=channel,
                meta=meta,
                external_url=external_url,
                priority=priority,
                dedupe_key=dedupe_key,
                source=source,
            )
        )

    async def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Report status, progress (0–100, with a note) or a result on a task: on an
        agent's handle as that agent, on a relay as the workspace operator (admin)."""
        return await self._run(
            calls.update_task(
                task_id,
                self._agent,
                workspace=self._workspace,
                epoch=self._epoch,
                status=status,
                progress=progress,
                note=note,
                result=result,
            )
        )

    async def release(self, task_id: int) -> Task:
        """Give a held task back (open again): on an agent's handle the holder does; on
        a relay the operator (admin) takes it from whoever holds it. Raises Conflict if
        the agent does not hold it (on a relay: if nobody does)."""
        return await self._run(
            calls.release(task_id, self._agent, workspace=self._workspace, epoch=self._epoch)
        )


class AsyncAgentHandle(AsyncTasksView, AsyncPairActions, AsyncMessagesView):
    """Acting as one agent: send, read, wait, claim. Carries the agent's epoch,
    so a handle fenced off by a newer registration gets Conflict.

    ``cursor`` is the highest message id this handle has returned from
    :meth:`inbox` or :meth:`wait`; :meth:`wait` waits for mail above it.
    """

    def __init__(self, relay: AsyncRelay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch
        self.cursor = 0

    @property
    def _workspace(self) -> str:
        return self.relay.workspace

    @property
    def token(self) -> str | None:
        """The bearer token the server issued when this relay registered the agent
        (``None`` embedded, or for an agent registered elsewhere). Whoever holds
        it can act as this agent: ``RELAYBUS_TOKEN=<token>``."""
        return self.relay.backend.token_for(self.id, workspace=self._workspace)

    async def _run(self, call: Call[T]) -> T:
        return await self.relay.backend.run(call)

    @property
    def _agent(self) -> str:
        return self.id

    @property
    def _epoch(self) -> int | None:
        return self.epoch

    async def info(self) -> Agent:
        """This agent as the relay sees it."""
        return await self._run(calls.get_agent(self.id, workspace=self._workspace))

    async def send(
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
        idempotency_key: str | None = None,
    ) -> Message:
        """Send a message (see ``Service.send`` for targets and errors).

        ``idempotency_key`` (1-255 printable ASCII, e.g. a uuid4 made once per
        logical send): sending again with the same key within 24 h returns the
        original message and stores nothing new, so a send whose answer was lost
        can be repeated safely; the same key with a different message is
        Conflict. Over HTTP every send carries a key (this one, or a fresh uuid4)
        and a send whose connection broke is retried with it (up to three times in all).
        """
        return await self._run(
            calls.send(
                self.id,
                to,
                body,
                workspace=self._workspace,
                epoch=self.epoch,
                subject=subject,
                channel=channel,
                priority=priority,
                meta=meta,
                claimable=claimable,
                reply_to=reply_to,
                idempotency_key=idempotency_key,
            )
        )

    async def reply(
        self,
        message: Message | int,
        body: str,
        *,
        to: str | None = None,
        subject: str | None = None,
        channel: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        idempotency_key: str | None = None,
    ) -> Message:
        """Answer ``message`` in its thread, to its sender (or, for one's own
        message, to its target) unless ``to`` says otherwise (e.g. the whole
        channel); the other keywords as for :meth:`send`."""
        return await self._run(
            calls.send(
                self.id,
                to,
                body,
                workspace=self._workspace,
                epoch=self.epoch,
                reply_to=message.id if isinstance(message, Message) else message,
                subject=subject,
                channel=channel,
                priority=priority,
                meta=meta,
                claimable=claimable,
                idempotency_key=idempotency_key,
            )
        )

    async def inbox(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Messages delivered to this agent; only marks them read if asked, and
        records them delivered (by ``via``) only if given one: pass it when this
        read hands the messages to the agent's session (see ``Service.inbox``)."""
        found = await self._run(
            calls.inbox(
                self.id,
                workspace=self._workspace,
                epoch=self.epoch,
                unread_only=unread_only,
                newest_first=newest_first,
                since=since,
                limit=limit,
                mark_read=mark_read,
                via=via,
            )
        )
        self._advance(found)
        return found

    async def read(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        via: Via | str | None = None,
    ) -> list[Message]:
        """:meth:`inbox` that marks what it returns read."""
        return await self.inbox(
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=True,
            via=via,
        )

    async def mark_read(
        self,
        ids: Sequence[int] | None = None,
        *,
        up_to: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """Mark messages read by id, or all up to a cursor; returns how many changed.
        One still queued is recorded delivered too, by ``via``."""
        return await self._run(
            calls.mark_read(
                self.id, workspace=self._workspace, ids=ids, up_to=up_to, epoch=self.epoch, via=via
            )
        )

    async def mark_delivered(self, ids: Sequence[int], *, via: Via | str) -> int:
        """Record that messages ``ids`` reached this agent's session by ``via``
        (typed into its terminal, shown by a hook…); returns how many moved from
        queued to delivered. Raises InvalidInput for an unknown ``via``."""
        return await self._run(
            calls.mark_delivered(self.id, ids, via=via, workspace=self._workspace, epoch=self.epoch)
        )

    async def unread_count(self) -> int:
        """How many messages of this agent are unread."""
        return await self._run(calls.unread_count(self.id, workspace=self._workspace))

    async def wait(
        self,
        timeout: float = 30.0,
        *,
        since: int | None = None,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Wait up to ``timeout`` seconds for unread mail above ``since`` (default:
        :attr:`cursor`); oldest first, empty on timeout. ``mark_read`` and ``via``
        as for :meth:`inbox`.

        With ``mark_read``, a wait interrupted just as mail arrives may have marked
        it read without returning it (it stays in the inbox, read).
        """
        cursor = self.cursor if since is None else since
        found = await self.relay._long_poll(
            lambda step: calls.wait(
                self.id,
                step,
                workspace=self._workspace,
                since=cursor,
                mark_read=mark_read,
                epoch=self.epoch,
                via=via,
            ),
            timeout,
        )
        self._advance(found)
        return found

    def messages(
        self, *, since: int | None = None, unread: bool = False, max_backoff: float = BACKOFF_CAP
    ) -> AsyncGenerator[Message, None]:
        """Messages delivered to this agent as they arrive, each once, for ever
        (break to stop; close it when done: ``contextlib.aclosing``). Records each
        delivered (``via="stream"``) as it is handed over; does not mark them read.

        Over a server this follows the SSE stream as this agent: it reconnects
        after a disconnect with exponential backoff (up to ``max_backoff``
        seconds, with jitter) and resumes with ``Last-Event-ID``, so nothing
        sent meanwhile is lost and nothing comes twice; embedded it follows the
        event log.

        Args:
            since: an event id (see :meth:`AsyncRelay.events`) to resume after;
                ``None`` starts at "now".
            unread: first yield the unread mail already in the inbox (oldest
                first), then what arrives.

        Raises:
            RelayError: the server refused the stream (e.g. 403 for an agent
                whose token this relay does not have).
        """
        return self._messages(since, unread, max_backoff)

    async def _messages(
        self, since: int | None, unread: bool, max_backoff: float
    ) -> AsyncGenerator[Message, None]:
        relay = self.relay
        if since is None:
            since = await relay.last_event_id()
        seen: set[int] = set()
        if unread:
            cursor: int | None = None
            while True:
                page = await self._run(
                    calls.inbox(
                        self.id,
                        workspace=self._workspace,
                        newest_first=False,
                        since=cursor,
                        limit=PAGE,
                    )
                )
                for message in page:
                    seen.add(message.id)
                    await self._acknowledge(message)
                    yield message
                if len(page) < PAGE:
                    break
                cursor = page[-1].id
        events = relay.backend.stream(
            StreamQuery(
                workspace=self._workspace,
                since=since,
                agent=None if relay.url is None else self.id,
                kinds=["message.sent"],
                max_backoff=max_backoff,
            )
        )
        try:
            async for event in events:
                if not delivered_to(event, self.id):
                    continue
                message = await message_of(event, relay)
                if message.id not in seen:
                    await self._acknowledge(message)
                    yield message
        finally:
            await events.aclose()

    async def _acknowledge(self, message: Message) -> None:
        # A fenced-off instance (stale epoch) or a removed agent still sees its
        # stream, but the message did not reach the agent's current session.
        try:
            await self.mark_delivered([message.id], via=Via.STREAM)
        except (Conflict, NotFound):
            pass

    async def claim(self, task_id: int, *, lease: float | None = None) -> Task:
        """Claim a task offered to this agent. Raises Conflict (with
        ``details["holder"]``) if taken, NotFound for a task it may not see."""
        return await self._run(
            calls.claim(task_id, self.id, workspace=self._workspace, epoch=self.epoch, lease=lease)
        )

    async def renew(self, task_id: int, *, lease: float | None = None) -> Task:
        """Extend the lease of a task this agent holds. Raises Conflict if it does not."""
        return await self._run(
            calls.renew(task_id, self.id, workspace=self._workspace, epoch=self.epoch, lease=lease)
        )

    async def renew_held(self) -> LeaseRenewal:
        """Extend every lease this agent holds, each by the length it was claimed
        with (``Service.renew_held``); ``next_in``: seconds until the next renewal is
        due, None if nothing is held. Raises Conflict if this instance was fenced off."""
        return await self._run(
            calls.renew_held(self.id, workspace=self._workspace, epoch=self.epoch)
        )

    async def heartbeat(self, status: AgentStatus | str | None = None) -> Agent:
        """Record that the agent is alive, optionally with a new status."""
        return await self._run(
            calls.heartbeat(self.id, workspace=self._workspace, epoch=self.epoch, status=status)
        )

    async def update(
        self,
        *,
        label: str | None = None,
        tags: Sequence[str] | None = None,
        capabilities: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        status: AgentStatus | str | None = None,
        meta: Mapping[str, Any] | None = None,
        add_tags: Sequence[str] | None = None,
        remove_tags: Sequence[str] | None = None,
        add_capabilities: Sequence[str] | None = None,
        remove_capabilities: Sequence[str] | None = None,
        join_channels: Sequence[str] | None = None,
        leave_channels: Sequence[str] | None = None,
        approval: Approval | str | None = None,
    ) -> Agent:
        """Change label, tags, capabilities, channels, status, meta or the approval
        mode (open, guarded, read-only), without a new epoch. A list given replaces
        the stored one; ``add_*``, ``remove_*``, ``join_channels`` and
        ``leave_channels`` change it item by item instead (idempotent, and
        race-free: see ``Service.update_agent``)."""
        return await self._run(
            calls.update_agent(
                self.id,
                workspace=self._workspace,
                epoch=self.epoch,
                label=label,
                tags=tags,
                capabilities=capabilities,
                channels=channels,
                status=status,
                meta=meta,
                add_tags=add_tags,
                remove_tags=remove_tags,
                add_capabilities=add_capabilities,
                remove_capabilities=remove_capabilities,
                join_channels=join_channels,
                leave_channels=leave_channels,
                approval=approval,
            )
        )

    async def unregister(self) -> None:
        """Remove the agent (see ``Service.unregister``); its token stops working."""
        await self._run(calls.unregister(self.id, workspace=self._workspace, epoch=self.epoch))

    def _advance(self, found: list[Message]) -> None:
        if found:
            self.cursor = max(self.cursor, max(m.id for m in found))

    def __repr__(self) -> str:
        return f"AsyncAgentHandle({self.id!r}, epoch={self.epoch})"


async def message_of(event: Event, relay: AsyncRelay) -> Message:
    """The message of a ``message.sent`` event: the copy the server put in the event,
    or (from the embedded log) read by id."""
    carried = event.data.get("message")
    if isinstance(carried, dict):
        # The stream carries the recipients once, as the event's ``data.recipients``.
        return Message.model_validate({"recipients": event.data.get("recipients", []), **carried})
    return await relay.message(int(event.data["message_id"]))
