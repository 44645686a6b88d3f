"""The hub: the one reader of the event log in a server process.

A single background thread sleeps on the store's wake-ups (a datagram on
SQLite, ``NOTIFY`` on PostgreSQL, so sends from other processes and other
replicas of a cluster count too; a notification's payload, the newest event
id, spares a read when this hub has fanned that event out already),
reads what is new with :meth:`~relaybus.service.Service.log_tail`, attaches
the full message to each ``message.sent`` event (one query per batch),
serialises every event to JSON once, and hands the batch to the event loop.
There it is fanned out to the live connections (SSE, WebSocket) that may see
it, and long-polls waiting in :meth:`Hub.wait_for` re-check.

Each connection has a :class:`Subscription`: a bounded queue of shared
:class:`Item` objects, so a thousand connections cost a thousand deques, not
a thousand copies of each event, threads or database pollers. A subscriber
that falls :attr:`Hub.queue_limit` events behind is dropped: its stream ends
and the client resumes from its last event id (the log keeps everything).

Resuming without a gap or a duplicate: a connection subscribes first (its
:attr:`Subscription.start` is the last event id already fanned out), replays
the log from its cursor up to ``start`` (:meth:`Hub.replay`), then delivers
the live events buffered meanwhile, all of which have ids above ``start``.


:class:`Item` and :class:`Subscription` live in :mod:`relaybus.server.subscriptions`
(re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..models import Event, Message
from ..service import Service
from ..service.pairs import pair_audience
from ..service.visibility import sent_audience
from ..store.notify import Listener
from .audiences import TaskAudiences
from .subscriptions import EVERYONE, Audience, Item, Subscription, settle

if TYPE_CHECKING:
    from .metrics import Metrics

logger = logging.getLogger(__name__)

__all__ = ["EVERYONE", "SHUTTING_DOWN", "Audience", "Hub", "Item", "Subscription"]

T = TypeVar("T")

#: Events read from the log per query (the service's maximum).
PAGE = 1000
#: Events a subscriber may have waiting before it is dropped as too slow.
QUEUE_LIMIT = 10_000
#: Seconds between re-checks when no wake-up comes (a lost datagram costs at most this).
FALLBACK_SECONDS = 1.0
#: Messages handed over by :meth:`Hub.remember`, kept until pushed (the newest).
RECENT_SIZE = 512
#: Seconds :meth:`Hub.stop` waits for the reader thread.
STOP_SECONDS = 5.0
#: The kinds of live connection counted in :attr:`Hub.connections`.
TRANSPORTS: Final = ("sse", "ws", "longpoll")

#: :attr:`Subscription.reason` once :meth:`Hub.stop` has ended it.
SHUTTING_DOWN: Final = "the server is shutting down"

_NOBODY: Audience = frozenset()


_RECIPIENTS = {"recipients"}


class _Room:
    """The subscribers of one workspace: admins, and agents by id."""

    def __init__(self) -> None:
        self.admins: set[Subscription] = set()
        self.agents: dict[str, set[Subscription]] = {}

    def __bool__(self) -> bool:
        return bool(self.admins or self.agents)


class Hub:
    """Live delivery for one server process. See the module docstring.

    Create it in the app's lifespan, ``await start()`` it, ``await stop()`` it
    at shutdown. :meth:`subscribe`, :meth:`unsubscribe`, :meth:`replay` and
    :meth:`wait_for` run on the event loop that started it.

    Attributes:
        connections: live connections by transport (``"sse"``, ``"ws"``,
            ``"longpoll"``).
        last_id: the last event id fanned out.
        queue_limit: events a subscriber may have waiting before it is dropped.
    """

    def __init__(
        self, service: Service, *, metrics: Metrics | None = None, queue_limit: int = QUEUE_LIMIT
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.queue_limit = queue_limit
        self.connections: dict[str, int] = dict.fromkeys(TRANSPORTS, 0)
        self.last_id = 0
        self._rooms: dict[str, _Room] = {}
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._generation = 0  # bumped at every fan-out, for wait_for
        self._changed: asyncio.Future[None] | None = None
        self._task_change: asyncio.Future[None] | None = None  # see task_changed
        #: Bumped (on the loop) at each fan-out with a task event, and by callbacks_due.
        self.task_generation = 0
        self._tasks = TaskAudiences(service)
        self._recent: OrderedDict[int, Message] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._read_message_id = 0  # the newest message the reader has pushed
        # The log cursor, shared by the reader thread and publish(): one reads at a time.
        self._cursor = 0
        self._read_lock = threading.Lock()
        # Local writes between their commit and their publish (see writing()), and
        # whether the reader thread left a wake-up to them meanwhile.
        self._writers = 0
        self._deferred = False
        self._writers_lock = threading.Lock()
        self._listener: Listener | None = None  # the reader thread's, while it listens

    # -- life ------------------------------------------------------------

    async def start(self) -> None:
        """Start reading the log from its current end (the stream's "now").

        Raises:
            StoreError: the store cannot be read.
        """
        self._loop = asyncio.get_running_loop()
        self.last_id = self._cursor = await asyncio.to_thread(self.service.log_head)
        self._thread = threading.Thread(target=self._read_log, name="relaybus-hub", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """End every subscription and long-poll, and stop the reader thread.

        Open streams return promptly after this; later subscriptions start
        closed. Safe to call twice.
        """
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        for room in list(self._rooms.values()):
            for sub in [*room.admins, *(s for subs in room.agents.values() for s in subs)]:
                sub.close(SHUTTING_DOWN)
        self._signal()
        if self._thread is not None:
            with contextlib.suppress(Exception):  # a broken store must not block shutdown
                await asyncio.to_thread(self.service.store.wake)
            await asyncio.to_thread(self._thread.join, STOP_SECONDS)

    # -- subscribing -----------------------------------------------------

    def subscribe(self, workspace: str, agent_id: str | None, transport: str) -> Subscription:
        """Subscribe a live connection; use the result as a context manager, whose
        exit unsubscribes.

        Args:
            workspace: the only workspace whose events it gets.
            agent_id: see events as this agent (the visibility rule), or ``None``
                for an admin's view of the whole workspace.
            transport: ``"sse"`` or ``"ws"`` (counted in :attr:`connections`).
        """
        sub = Subscription(self, workspace, agent_id, transport, self.last_id)
        if self._stopped:
            sub.close(SHUTTING_DOWN)
            return sub
        room = self._rooms.setdefault(workspace, _Room())
        if agent_id is None:
            room.admins.add(sub)
        else:
            room.agents.setdefault(agent_id, set()).add(sub)
        self._count(transport, +1)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (idempotent)."""
        sub.close("unsubscribed")
        room = self._rooms.get(sub.workspace)
        if room is None:
            return
        if sub.agent_id is None:
            if sub not in room.admins:
                return
            room.admins.discard(sub)
        else:
            subs = room.agents.get(sub.agent_id)
            if subs is None or sub not in subs:
                return
            subs.discard(sub)
            if not subs:
                del room.agents[sub.agent_id]
        if not room:
            del self._rooms[sub.workspace]
        self._count(sub.transport, -1)

    async def replay(self, sub: Subscription, since: int) -> AsyncIterator[list[Item]]:
        """The logged events ``sub`` may see with ``since < id <= sub.start``, in pages,
        oldest first. Continue with ``sub.get()`` afterwards: no gap, no duplicate."""
        cursor = since
        while cursor < sub.start:
            items, cursor = await asyncio.to_thread(
                self._replay_page, sub.workspace, sub.agent_id, cursor, sub.start
            )
            if items:
                yield items

    def remember(self, messages: Iterable[Message]) -> None:
        """Hand over messages this process has just stored, so the hub pushes them
        without reading them back from the database (thread-safe; optional: a
        message it was not given is read with ``messages_by_id``). Call it right
        after the send returns."""
        with self._recent_lock:
            for message in messages:
                if message.id > self._read_message_id:  # else: pushed already
                    self._recent[message.id] = message
            while len(self._recent) > RECENT_SIZE:
                self._recent.popitem(last=False)

    def publish(self, messages: Iterable[Message] = (), *, logged: Sequence[Event] = ()) -> None:
        """Fan out what this process has just committed, now, from the calling
        worker thread: the thread that committed reads the log's tail itself
        instead of waking the reader thread (a datagram and two thread switches,
        about a third of a millisecond under load). Order is kept: the reader
        and publishers share one cursor and read one at a time.

        Call it right after a send (or any write) returns, with the messages
        stored, so they are pushed without being read back. Never raises: a
        failed read is logged and the reader thread catches up.

        Args:
            logged: every event the write committed, in id order (see
                :meth:`writing`); when they are provably the log's next events, they
                are fanned out as they are, without reading the log.
        """
        self.remember(messages)
        if self._loop is None or self._stopping.is_set():
            return
        try:
            with self._read_lock:
                if self._follows(logged):
                    self._cursor = self._hand_over(logged)
                else:
                    self._cursor = self._drain(self._cursor)
        except _LoopClosed:
            return
        except Exception:  # the write succeeded; the reader thread retries the read
            logger.exception("reading the event log after a local write failed")

    def _follows(self, logged: Sequence[Event]) -> bool:
        # Under the read lock: whether ``logged``, the events of one committed write
        # transaction, are all the log holds past the cursor that is not newer than
        # them. Writers are serialised (SQLite's write lock) and ids grow in commit
        # order, so every event below the first is older: if the first is cursor+1,
        # all those were fanned out already. Ids without a gap, or the log is read.
        # SQLite only: PostgreSQL's JSONB hands ``data`` back with its keys reordered,
        # and the frames must not depend on which way an event came.
        if not logged or self.service.store.dialect != "sqlite":
            return False
        first = logged[0].id
        return first == self._cursor + 1 and all(
            event.id == first + n for n, event in enumerate(logged)
        )

    @contextlib.contextmanager
    def writing(self) -> Iterator[list[Event]]:
        """Wrap a local write: on exit (however it ends) the log's tail is fanned out
        from the calling thread, as :meth:`publish` does; hand the messages stored to
        :meth:`remember` inside the block.

        Yields a list: a block that fills it with every event its write committed
        (in id order: ``send_group(log=...)``) spares that read when nothing else
        was committed between the last event fanned out and those (see
        :meth:`publish`'s ``logged``); left empty, the log is read.

        The block's own commits do not wake the reader thread at all (``Store.muted``),
        and while a block is open the reader thread leaves other wake-ups to it (the
        read at its exit comes after them and sees everything committed before), so a
        local commit costs one read of the log, not two (the publisher's and the
        reader thread's), and its messages are pushed from :meth:`remember`, not read
        back because the reader thread got to the log first. Should that read fail,
        the reader thread's fallback re-check (:data:`FALLBACK_SECONDS`) catches up.
        """
        logged: list[Event] = []
        with self._writers_lock:
            self._writers += 1
        listener = self._listener
        try:
            if listener is None:
                yield logged
            else:
                # The block's own commits do not wake the reader thread (the read at
                # the exit covers them): no thread switch and no datagram to this
                # process for each local write. Other processes' wake-ups still come.
                with self.service.store.muted(listener):
                    yield logged
        finally:
            with self._writers_lock:
                self._writers -= 1
                # A wake-up the reader thread left to the open blocks (another
                # process's or thread's commit): this exit reads the log for it.
                deferred, self._deferred = self._deferred, False
            self.publish(logged=() if deferred else logged)

    # -- long-poll -------------------------------------------------------

    async def wait_for(
        self, check: Callable[[], T], timeout: float, *, transport: str = "longpoll"
    ) -> T:
        """Run the sync ``check`` in a worker thread until it returns something
        truthy or ``timeout`` seconds pass, re-running it after each batch of new
        events (and at least every :data:`FALLBACK_SECONDS`).

        Returns:
            the truthy result, or the last (falsy) one on timeout or shutdown.

        Raises:
            whatever ``check`` raises.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        self._count(transport, +1)
        try:
            while True:
                generation = self._generation
                result = await asyncio.to_thread(check)
                remaining = deadline - loop.time()
                if result or remaining <= 0 or self._stopped:
                    return result
                if generation == self._generation:  # nothing new while checking
                    if self._changed is None or self._changed.done():
                        self._changed = loop.create_future()
                    await asyncio.wait({self._changed}, timeout=min(remaining, FALLBACK_SECONDS))
        finally:
            self._count(transport, -1)

    async def task_changed(self, timeout: float, since: int) -> None:
        """Return once :attr:`task_generation` is past ``since`` (a batch of events with
        a task event that queued a callback, ``data.callback_id``, was fanned out: an
        integration's task changed, here or on another replica; or
        :meth:`callbacks_due`), or after ``timeout`` seconds: the
        callback sender's wake-up. The caller reads the generation before it looks at
        the outbox, so a change while it looked is never slept through."""
        if self.task_generation != since:
            return
        if self._task_change is None or self._task_change.done():
            self._task_change = asyncio.get_running_loop().create_future()
        await asyncio.wait({self._task_change}, timeout=timeout)

    def callbacks_due(self) -> None:
        """Wake :meth:`task_changed`'s waiter now, from any thread: a callback became
        due without a task change (a replay), so the sender need not wait for its poll."""
        if self._loop is None or self._stopping.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            self._loop.call_soon_threadsafe(self._wake_callbacks)

    def _wake_callbacks(self) -> None:
        self.task_generation += 1
        if self._task_change is not None:
            settle(self._task_change)
            self._task_change = None

    # -- visibility ------------------------------------------------------

    def visible_to(
        self, agent_id: str | None, events: Iterable[Event], workspace: str
    ) -> list[Event]:
        """The events of ``workspace`` that ``agent_id`` may see (``None``: an
        admin, who sees the whole workspace).

        An agent sees ``message.sent`` of a message it may see (the service's
        visibility rule: it sent it or has a delivery of it, checked again in the
        database, so a delivery removed since the send hides it),
        ``message.delivered`` and ``message.read`` of its own deliveries, every
        ``agent.*`` event, and ``task.*`` events of tasks it may see (the same
        rule for tasks: it created the task, holds it, or received its message;
        checked in the database too); never ``relay.*``. Reads the database:
        call it off the loop.
        """
        return self._visible(agent_id, [e for e in events if e.workspace == workspace])

    def _visible(self, agent_id: str | None, events: list[Event]) -> list[Event]:
        # Events of one workspace: by audience, then message.sent by the rule in SQL.
        if agent_id is None:
            return events
        seen = [e for e in events if self._sees(agent_id, e)]
        if not seen:
            return seen
        workspace = seen[0].workspace
        sent = [_message_id(e) for e in seen if e.kind == "message.sent"]
        ids = [i for i in sent if i is not None]
        if ids:
            allowed = self.service.visible_message_ids(ids, workspace=workspace, viewer=agent_id)
            seen = [e for e in seen if e.kind != "message.sent" or _message_id(e) in allowed]
        about = [_task_id(e) for e in seen if e.kind.startswith("task.")]
        task_ids = [i for i in about if i is not None]
        if task_ids:
            shown = self.service.visible_task_ids(task_ids, workspace=workspace, viewer=agent_id)
            seen = [e for e in seen if not e.kind.startswith("task.") or _task_id(e) in shown]
        return seen

    def _sees(self, agent_id: str | None, event: Event) -> bool:
        if agent_id is None:
            return True
        audience = self._audience(event)
        return audience == EVERYONE or agent_id in audience

    def _audience(self, event: Event) -> Audience:
        kind = event.kind
        if kind == "message.sent":
            return sent_audience(event)
        if kind in ("message.read", "message.delivered"):
            return frozenset([event.agent_id]) if event.agent_id else _NOBODY
        if kind.startswith("agent."):
            return EVERYONE
        if kind.startswith("task."):
            return self._tasks.audience(event)
        if kind.startswith("pair."):
            return pair_audience(event)
        return _NOBODY

    # -- the reader (its own thread) ---------------------------------------

    def _read_log(self) -> None:
        try:
            with self.service.store.listen() as listener:
                self._listener = listener  # closed after the block: writing() copes
                read = True
                announced: int | None = None
                while not self._stopping.is_set():
                    if read:
                        try:
                            with self._read_lock:
                                # A publisher may have read those events while this
                                # thread waited for the lock (its own write's NOTIFY).
                                if announced is None or announced > self._cursor:
                                    self._cursor = self._drain(self._cursor)
                        except _LoopClosed:
                            return  # the server is gone
                        except Exception:  # the thread's top level: log, retry after a pause
                            logger.exception("reading the event log failed; retrying")
                    if self._stopping.is_set():
                        break
                    woken = listener.wait(FALLBACK_SECONDS)
                    # PostgreSQL announces the newest event id: a wake-up for events
                    # already fanned out (this replica's own writes, a heartbeat that
                    # logged nothing) needs no read. No id known: read.
                    announced = listener.announced if woken else None
                    read = announced is None or announced > self._cursor
                    if woken and read:
                        with self._writers_lock:
                            if self._writers:
                                # A local writer reads the log when its block ends.
                                read = False
                                self._deferred = True
        except Exception:
            logger.exception("the hub cannot listen for wake-ups; live delivery stopped")

    def _drain(self, cursor: int) -> int:
        while not self._stopping.is_set():
            events = self.service.log_tail(cursor, PAGE)
            if not events:
                break
            cursor = self._hand_over(events)
            if len(events) < PAGE:
                break
        return cursor

    def _hand_over(self, events: Sequence[Event]) -> int:
        # Under the read lock: the log's next events to the loop; returns the new cursor.
        assert self._loop is not None
        items = self._batch(events)
        cursor = events[-1].id
        callbacks = any("callback_id" in event.data for event in events)
        try:
            self._loop.call_soon_threadsafe(self._fan_out, items, cursor, callbacks)
        except RuntimeError as exc:  # asyncio's "Event loop is closed"
            raise _LoopClosed from exc
        return cursor

    def _items(self, events: Sequence[Event]) -> list[Item]:
        found = self._messages(events)
        return [self._item(event, _message_of(event, found)) for event in events]

    def _batch(self, events: Sequence[Event]) -> list[Item | _Unbuilt]:
        # The log's tail, for _fan_out: an event of a workspace nobody subscribes to now
        # is serialised only if someone has by the fan-out (rare; usually never). Its
        # message is looked up now all the same (it leaves the remembered ones), and
        # task events are always built: their audiences keep TaskAudiences up to date.
        found = self._messages(events)
        rooms = self._rooms  # the loop thread's; a lookup is safe from here
        return [
            self._item(event, _message_of(event, found))
            if event.workspace in rooms or event.kind.startswith("task.")
            else _Unbuilt(event, _message_of(event, found))
            for event in events
        ]

    def _messages(self, events: Sequence[Event]) -> dict[int, Message]:
        # The full message of each message.sent event: handed over (remember) or read.
        wanted = [
            e.data["message_id"]
            for e in events
            if e.kind == "message.sent" and isinstance(e.data.get("message_id"), int)
        ]
        found: dict[int, Message] = {}
        if wanted:
            with self._recent_lock:
                for message_id in wanted:
                    message = self._recent.pop(message_id, None)
                    if message is not None:
                        found[message_id] = message
                self._read_message_id = max(self._read_message_id, *wanted)
            missing = [i for i in wanted if i not in found]
            if missing:
                found.update(self.service.messages_by_id(missing))
        return found

    def _item(self, event: Event, message: Message | None) -> Item:
        doc: dict[str, Any] = event.model_dump(mode="json")
        if message is not None:
            # Its recipients are the event's own ``data.recipients``: once per frame.
            doc["data"]["message"] = message.model_dump(mode="json", exclude=_RECIPIENTS)
        text = json.dumps(doc, separators=(",", ":"))
        return Item(event.id, event.workspace, event.kind, text, self._audience(event))

    def _replay_page(
        self, workspace: str, agent_id: str | None, since: int, until: int
    ) -> tuple[list[Item], int]:
        # In a worker thread: one page of the log for a resuming subscriber.
        events = self.service.events(workspace=workspace, since=since, limit=PAGE)
        more = len(events) == PAGE and events[-1].id < until
        page = self._visible(agent_id, [e for e in events if e.id <= until])
        return self._items(page), events[-1].id if more else until

    # -- fan-out (the loop's thread) -----------------------------------------

    def _fan_out(self, items: list[Item | _Unbuilt], last_id: int, callbacks: bool = False) -> None:
        delivered = 0
        if callbacks:  # an integration's task changed: its callback is queued
            self._wake_callbacks()
        for entry in items:
            room = self._rooms.get(entry.workspace)
            if room is None:
                continue
            if isinstance(entry, _Unbuilt):  # someone subscribed since it was read
                item = self._item(entry.event, entry.message)
            else:
                item = entry
            pushed = 0
            for sub in room.admins:
                pushed += sub._push(item)
            if item.audience == EVERYONE:
                for subs in room.agents.values():
                    for sub in subs:
                        pushed += sub._push(item)
            else:
                for agent_id in item.audience:
                    for sub in room.agents.get(agent_id, ()):
                        pushed += sub._push(item)
            if item.kind == "message.sent":
                delivered += pushed
        self.last_id = last_id
        self._signal()
        if self.metrics is not None:
            if delivered:
                self.metrics.messages_delivered.inc(delivered)
            self.metrics.queue_depth.set(self._queued)

    def _signal(self) -> None:
        self._generation += 1
        if self._changed is not None:
            settle(self._changed)
            self._changed = None

    def _count(self, transport: str, step: int) -> None:
        self.connections[transport] = self.connections.get(transport, 0) + step
        if self.metrics is not None:
            self.metrics.live_connections.labels(transport=transport).set(
                self.connections[transport]
            )


class _Unbuilt:
    """An event read from the log while nobody subscribed to its workspace, with its
    message (``message.sent``): :meth:`Hub._fan_out` serialises it only if someone has
    subscribed by then (its audience is a function of the event alone: never a task
    event's)."""

    __slots__ = ("event", "message", "workspace")

    def __init__(self, event: Event, message: Message | None) -> None:
        self.event = event
        self.message = message
        self.workspace = event.workspace


def _message_of(event: Event, found: dict[int, Message]) -> Message | None:
    # The full message a message.sent event carries, if found (None for other kinds).
    message_id = event.data.get("message_id")
    if event.kind != "message.sent" or not isinstance(message_id, int):
        return None
    return found.get(message_id)


def _message_id(event: Event) -> int | None:
    found = event.data.get("message_id")
    return found if isinstance(found, int) else None


def _task_id(event: Event) -> int | None:
    found = event.data.get("task_id")
    return found if isinstance(found, int) else None


class _LoopClosed(Exception):
    """The event loop the hub fans out on has closed."""
