"""The handle an agent acts through: :class:`AgentHandle` (send, read, wait,
claim, receipts), from :meth:`relaybus.Relay.register` or :meth:`relaybus.Relay.agent`."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound
from ..models import Agent, AgentStatus, Event, Message, Priority, Task, TaskEvent, Via
from .transport import BACKOFF_CAP, delivered_to

if TYPE_CHECKING:
    from .relay import Relay

#: Inbox and event-log page size when catching up.
EVENT_PAGE = 1000


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

    @property
    def token(self) -> str | None:
        """The bearer token the server issued when this relay registered the agent
        (``None`` embedded, or for an agent registered elsewhere). Whoever holds
        it can act as this agent: ``RELAYBUS_TOKEN=<token>``."""
        from .remote import RemoteService

        service = self.relay.service
        if isinstance(service, RemoteService):
            return service.token_for(self.id, workspace=self.relay.workspace)
        return None

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
        idempotency_key: str | None = None,
    ) -> Message:
        """Send a message (see :meth:`Service.send` for targets and errors).

        ``idempotency_key`` (1-255 printable ASCII, e.g. a uuid4 made once per
        logical send): sending again with the same key within 24 h returns the
        original message and stores nothing new, so a send whose answer was lost
        can be repeated safely; the same key with a different message is
        Conflict. Over HTTP every send carries a key (this one, or a fresh uuid4)
        and a send whose connection broke is retried once with it.
        """
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
            idempotency_key=idempotency_key,
            **self._kw,
        )

    def reply(self, message: Message | int, body: str, **kwargs: Any) -> Message:
        """Answer ``message`` in its thread, to its sender (or, for one's own
        message, to its target) unless ``to=`` says otherwise; other keywords
        (``idempotency_key`` too) as for :meth:`send`."""
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
        via: Via | str | None = None,
    ) -> list[Message]:
        """Messages delivered to this agent; only marks them read if asked, and
        records them delivered (by ``via``) only if given one: pass it when this
        read hands the messages to the agent's session (see ``Service.inbox``)."""
        found = self.relay.service.inbox(
            self.id,
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=mark_read,
            via=via,
            **self._kw,
        )
        self._advance(found)
        return found

    def read(self, **kwargs: Any) -> list[Message]:
        """:meth:`inbox` that marks what it returns read."""
        return self.inbox(mark_read=True, **kwargs)

    def mark_read(
        self,
        ids: Sequence[int] | None = None,
        *,
        up_to: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """Mark messages read by id, or all up to a cursor; returns how many changed.
        One still queued is recorded delivered too, by ``via``."""
        return self.relay.service.mark_read(self.id, ids=ids, up_to=up_to, via=via, **self._kw)

    def mark_delivered(self, ids: Sequence[int], *, via: Via | str) -> int:
        """Record that messages ``ids`` reached this agent's session by ``via``
        (typed into its terminal, shown by a hook…); returns how many moved from
        queued to delivered. Raises InvalidInput for an unknown ``via``."""
        return self.relay.service.mark_delivered(self.id, ids, via=via, **self._kw)

    def unread_count(self) -> int:
        """How many messages of this agent are unread."""
        return self.relay.service.unread_count(self.id, workspace=self.relay.workspace)

    def wait(
        self,
        timeout: float = 30.0,
        *,
        since: int | None = None,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Block up to ``timeout`` seconds for unread mail above ``since``
        (default: this handle's :attr:`cursor`); oldest first, empty on timeout.
        ``mark_read`` and ``via`` as for :meth:`inbox`."""
        found = self.relay.service.wait(
            self.id,
            timeout,
            since=self.cursor if since is None else since,
            mark_read=mark_read,
            via=via,
            **self._kw,
        )
        self._advance(found)
        return found

    def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[Task]:
        """The tasks this agent may see (it created, holds, or received the message
        of), newest first."""
        return self.relay.service.list_tasks(
            workspace=self.relay.workspace,
            status=status,
            assignee=assignee,
            limit=limit,
            viewer=self.id,
        )

    def task(self, task_id: int) -> Task:
        """One task this agent may see. Raises NotFound (also for one it may not see)."""
        return self.relay.service.get_task(task_id, workspace=self.relay.workspace, viewer=self.id)

    def task_history(self, task_id: int) -> list[TaskEvent]:
        """The history of a task this agent may see, oldest first. Raises NotFound."""
        return self.relay.service.task_history(
            task_id, workspace=self.relay.workspace, viewer=self.id
        )

    def claim(self, task_id: int, *, lease: float | None = None) -> Task:
        """Claim a task offered to this agent. Raises Conflict (with
        ``details["holder"]``) if taken, NotFound for a task it may not see."""
        return self.relay.service.claim(task_id, self.id, lease=lease, **self._kw)

    def renew(self, task_id: int, *, lease: float | None = None) -> Task:
        """Extend the lease of a task this agent holds. Raises Conflict if it does not."""
        return self.relay.service.renew(task_id, self.id, lease=lease, **self._kw)

    def release(self, task_id: int) -> Task:
        """Give a held task back (open again). Raises Conflict if not held."""
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
        """Record that the agent is alive, optionally with a new status."""
        return self.relay.service.heartbeat(self.id, status=status, **self._kw)

    def update(self, **changes: Any) -> Agent:
        """Change label, tags, capabilities, channels, status or meta."""
        return self.relay.service.update_agent(self.id, **changes, **self._kw)

    def unregister(self) -> None:
        """Remove the agent (see ``Service.unregister``); its token stops working."""
        self.relay.service.unregister(self.id, **self._kw)

    def messages(
        self, *, since: int | None = None, unread: bool = False, max_backoff: float = BACKOFF_CAP
    ) -> Generator[Message, None, None]:
        """Messages delivered to this agent as they arrive, each once, for ever
        (break to stop). Records each delivered (``via="stream"``) as it is
        handed over; does not mark them read.

        Over a server this follows the SSE stream as this agent (reconnecting,
        see :meth:`Relay.stream`); embedded it follows the event log.

        Args:
            since: an event id (see :meth:`Relay.events`) to resume after;
                ``None`` starts at "now".
            unread: first yield the unread mail already in the inbox (oldest
                first), then what arrives.

        Raises:
            RelayError: the server refused the stream (e.g. 403 for an agent
                whose token this relay does not have).
        """
        relay = self.relay
        if since is None:
            since = relay.service.last_event_id(workspace=relay.workspace)
        seen: set[int] = set()
        if unread:
            for message in self._unread():
                seen.add(message.id)
                self._acknowledge(message)
                yield message
        from .remote import RemoteService

        if isinstance(relay.service, RemoteService):
            events = relay.service.iter_events(
                since=since,
                agent=self.id,
                kinds=["message.sent"],
                workspace=relay.workspace,
                max_backoff=max_backoff,
            )
        else:
            events = relay.stream(since=since, kinds=["message.sent"])
        for event in events:
            if not delivered_to(event, self.id):
                continue
            message = message_of(event, relay)
            if message.id not in seen:
                self._acknowledge(message)
                yield message

    def _acknowledge(self, message: Message) -> None:
        # A fenced-off instance (stale epoch) or a removed agent still sees its
        # stream, but the message did not reach the agent's current session.
        try:
            self.mark_delivered([message.id], via=Via.STREAM)
        except (Conflict, NotFound):
            pass

    def _unread(self) -> Iterator[Message]:
        cursor: int | None = None
        while True:
            page = self.relay.service.inbox(
                self.id,
                workspace=self.relay.workspace,
                newest_first=False,
                since=cursor,
                limit=EVENT_PAGE,
            )
            yield from page
            if len(page) < EVENT_PAGE:
                return
            cursor = page[-1].id

    def _advance(self, found: list[Message]) -> None:
        if found:
            self.cursor = max(self.cursor, max(m.id for m in found))

    def __repr__(self) -> str:
        return f"AgentHandle({self.id!r}, epoch={self.epoch})"


def message_of(event: Event, relay: Relay) -> Message:
    """The message of a ``message.sent`` event: the copy the server put in the event,
    or (from the embedded log) read by id."""
    carried = event.data.get("message")
    if isinstance(carried, dict):
        return Message.model_validate(carried)
    return relay.service.get_message(int(event.data["message_id"]), workspace=relay.workspace)
