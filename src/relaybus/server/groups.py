"""Group commit for ``POST /v1/messages``: concurrent sends share one transaction.

Each send request runs in a worker thread of the server's pool. It queues its
send and, if no thread is storing a group, leads: it takes everything queued
(its own send first, then what arrived while the previous group was stored),
stores it with :meth:`~relaybus.service.Service.send_group` in one
transaction, fans the messages out (:meth:`Hub.publish`, once for the group,
in id order), then hands each follower its own outcome, a message or an
error, and the lead to the oldest request that queued meanwhile. A follower
just waits for its outcome (or for the lead). Nothing waits for company: a lone
sender leads a group of one at once, so it pays no added latency, and under
load a group is whatever queued during one commit (the classic
leader/follower group commit, e.g. PostgreSQL's WAL insertion and MySQL's
binlog group commit).

Every send is acknowledged only after the commit that stored it, and a
refused send is refused alone (see ``send_group``'s savepoints).

A send from the event loop (:meth:`SendGroups.asend`, the hot route's) takes no
worker thread of its own: it queues with an asyncio future, and the group it lands
in is stored by the thread that leads, or, when the lead would pass to it, by the
queue's own driver thread (one hop per group, not per send); the outcomes of a
group's loop senders are handed to the loop in one callback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from ..models import Message
from ..service import Service
from ..service.messages import GroupSend
from .hub import Hub
from .metrics import Metrics

logger = logging.getLogger(__name__)

#: Most sends stored in one group (the rest wait for the next one).
MAX_GROUP = 256


class _Waiter:
    """One queued send: its outcome once stored, or the lead handed to it. A send
    from a worker thread waits on ``done``; one from the event loop on ``future``."""

    __slots__ = ("send", "outcome", "lead", "done", "future")

    def __init__(self, send: GroupSend, future: asyncio.Future[Message] | None = None) -> None:
        self.send = send
        self.outcome: Message | BaseException | object | None = None
        self.lead = False
        self.future = future
        self.done = threading.Event() if future is None else None


class SendGroups:
    """The group-commit queue of one server process (see the module docstring).

    Args:
        service: stores the groups.
        hub: fans out each group's messages after its commit.
        metrics: counts the messages sent.
        kill_key: test-only fault injection: a group holding a send with this
            idempotency key makes the process SIGKILL itself right after the
            commit, before any reply (``RELAYBUS_TEST_KILL_AFTER_COMMIT``).
    """

    def __init__(
        self, service: Service, hub: Hub, metrics: Metrics, *, kill_key: str | None = None
    ) -> None:
        self.service = service
        self.hub = hub
        self.metrics = metrics
        self.kill_key = kill_key
        self._lock = threading.Lock()
        self._grown = threading.Condition(self._lock)
        self._queue: list[_Waiter] = []
        self._leading = False
        self._driver: ThreadPoolExecutor | None = None
        #: Called with each group's size before it is stored, inside the hub's
        #: :meth:`~Hub.writing` block (tests hold a group there).
        self.on_group: Callable[[int], None] | None = None

    def send(self, send: GroupSend) -> Message:
        """Store ``send`` (with whatever else is queued) and return its message once
        committed and fanned out. Blocking: call it from a worker thread.

        Raises:
            RelayError: what :meth:`Service.send` raises for this send alone.
            StoreError, sqlalchemy.exc.DBAPIError: the database failed.
        """
        waiter = _Waiter(send)
        assert waiter.done is not None
        following = self._enqueue(waiter)
        if following:
            waiter.done.wait()
        if not following or waiter.lead:
            self._lead()
        if waiter.outcome is _ALONE:
            # The group failed as a whole: each send is stored on its own, so that
            # each gets its own answer (as the WebSocket route does with a batch).
            self._store([waiter])
        outcome = waiter.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Message)
        return outcome

    async def asend(self, send: GroupSend) -> Message:
        """:meth:`send` from the event loop, without a worker thread per send: the
        send queues, and the thread that stores its group (a leading sender's, or
        this queue's driver) hands the outcome back to the loop.

        Raises:
            RelayError, StoreError, sqlalchemy.exc.DBAPIError: as :meth:`send`.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        if not self._enqueue(_Waiter(send, future)):
            self._drive_soon()
        return await future

    def close(self) -> None:
        """Let the driver thread end once idle (the app's shutdown; nothing sends after)."""
        if self._driver is not None:
            self._driver.shutdown(wait=False)

    def _enqueue(self, waiter: _Waiter) -> bool:
        # Queue ``waiter``; False when no group is being stored: the caller leads.
        with self._lock:
            self._queue.append(waiter)
            following = self._leading
            self._leading = True
            self._grown.notify_all()
        return following

    def wait_queued(self, count: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until at least ``count`` sends wait for the
        next group (for tests that build a group while :attr:`on_group` holds one).

        Returns:
            whether they do.
        """
        with self._grown:
            return self._grown.wait_for(lambda: len(self._queue) >= count, timeout)

    def _lead(self) -> None:
        # This thread stores one group, then passes the lead on (or gives it up): to
        # the oldest sender queued meanwhile, or to the driver when that one is a
        # loop's (it has no thread to lead with).
        with self._lock:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._store(group, alone_on_error=len(group) > 1)
        except BaseException as exc:
            if group[0].future is None:
                raise  # the group of one is this thread's own send: send() raises it
            group[0].outcome = exc
        finally:
            drive = False
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    if successor.done is not None:
                        successor.lead = True
                        successor.done.set()
                    else:
                        drive = True
                else:
                    self._leading = False
            if drive:
                self._drive_soon()
            self._finish(group)

    def _drive(self) -> None:
        # The driver thread: lead the group of a loop's send.
        try:
            self._lead()
        except BaseException:  # _lead hands a group's failure to its senders
            logger.exception("the send queue's driver failed")

    def _drive_soon(self) -> None:
        if self._driver is None:
            with self._lock:
                if self._driver is None:
                    self._driver = ThreadPoolExecutor(1, thread_name_prefix="relaybus-sends")
        try:
            self._driver.submit(self._drive)
        except RuntimeError:  # closed (a send during shutdown): a thread of its own
            threading.Thread(target=self._drive, name="relaybus-sends", daemon=True).start()

    def _finish(self, group: list[_Waiter]) -> None:
        # Wake the group's thread senders; hand its loop senders their outcomes (a
        # send of a group that failed as a whole is stored alone first, here).
        settled: list[_Waiter] = []
        for waiter in group:
            if waiter.done is not None:
                waiter.done.set()
                continue
            if waiter.outcome is _ALONE:
                try:
                    self._store([waiter])
                except BaseException as exc:
                    waiter.outcome = exc
            settled.append(waiter)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        for waiter in settled:
            assert waiter.future is not None
            by_loop.setdefault(waiter.future.get_loop(), []).append(waiter)
        for loop, waiters in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, waiters)
            except RuntimeError:  # asyncio's "Event loop is closed": nobody waits
                pass

    def _store(self, group: list[_Waiter], *, alone_on_error: bool = False) -> None:
        stored: list[Message] = []
        with self.hub.writing() as logged:  # fans the group out at its end
            if self.on_group is not None:
                self.on_group(len(group))
            try:
                outcomes = self.service.send_group([w.send for w in group], log=logged)
            except Exception:
                if not alone_on_error:
                    raise
                logger.exception(
                    "storing a group of %d sends failed; storing each alone", len(group)
                )
                for waiter in group:
                    waiter.outcome = _ALONE
                return
            for waiter, outcome in zip(group, outcomes, strict=True):
                waiter.outcome = outcome
                if isinstance(outcome, Message):
                    stored.append(outcome)
            if self.kill_key is not None and any(
                w.send.idempotency_key == self.kill_key and isinstance(w.outcome, Message)
                for w in group
            ):
                os.kill(os.getpid(), signal.SIGKILL)
            self.hub.remember(stored)
        if stored:
            self.metrics.messages_sent.inc(len(stored))


#: A waiter's outcome when its group failed as a whole: store it alone.
_ALONE: Final = object()


def _settle(waiters: list[_Waiter]) -> None:
    # On the loop: each loop sender's future gets its outcome (unless it gave up).
    for waiter in waiters:
        future = waiter.future
        assert future is not None
        if future.done():
            continue  # cancelled: the request went away (its send is stored all the same)
        outcome = waiter.outcome
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            assert isinstance(outcome, Message)
            future.set_result(outcome)
