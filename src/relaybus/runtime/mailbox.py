"""The messages waiting to be typed into a terminal program, and their receipts.

A :class:`Mailbox` follows the agent's inbox on a background thread (a
long-poll: the embedded store's wake-ups or a server's ``?wait=``) and keeps
the unread messages in order. The terminal loop asks :meth:`Mailbox.next` for
a message whenever it could type one, reports :meth:`~Mailbox.typed` once the
keystrokes (with the final Enter) were written, and :meth:`~Mailbox.settled`
at each idle boundary. Each message goes:

    queued ──next()──▶ in flight ──typed()──▶ delivered ──settled()──▶ read

and the relay hears of the last two steps (``mark_delivered`` with the channel
it took, ``mark_read``) through a :class:`~.worker.Worker`, off the loop's
thread. Nothing is ever dropped: a busy program keeps its queue, with no retry
limit. When the program exits, what it had not read stays unread in the relay
for the next run; :meth:`~Mailbox.restart` (a new program after a crash) puts
everything typed-but-unread back in the queue, so it is typed again, but within
one program run no message is typed twice.

Which message goes when (:meth:`Mailbox.next`): in ``wait`` mode (the default)
the oldest one at an idle boundary; an urgent message at once, even while the
program is busy, ahead of older ones; in ``steer`` mode every message at once.

With ``claim_first`` a claimable message (one whose delivery carries a task id)
is claimed on the poll thread as it arrives, before it is queued
(:mod:`.claims`): only the winner's program is typed the task's text; a loser's
gets a one-line notice instead (``task 12 was claimed by bob``), or nothing with
``claim_notices=False``, and the message is read either way.

:meth:`Mailbox.take` hands out up to N of them at once, for a runner that types
several messages as one turn (``relaybus run --batch``).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from ..client import AgentHandle
from ..errors import RelayError
from ..models import Message, Priority, Via, parse_choice
from .claims import ClaimFirst
from .worker import PERMANENT, Worker

logger = logging.getLogger("relaybus.runtime")

#: Longest single long-poll, seconds: how long :meth:`Mailbox.stop` may wait for
#: the poll thread. Costs one query per period on an idle relay.
POLL_SECONDS = 10.0
#: Pause after a failed poll (relay unreachable), seconds.
RETRY_SECONDS = 5.0
#: Unread messages fetched per page at start and restart.
PAGE = 500
#: Longest wait for earlier receipts before a restart re-reads the inbox, seconds.
FLUSH_SECONDS = 5.0


class InjectMode(StrEnum):
    """When messages are typed: ``wait`` for an idle boundary, or ``steer`` at once."""

    WAIT = "wait"
    STEER = "steer"


def parse_mode(value: InjectMode | str) -> InjectMode:
    """``"wait"`` / ``"steer"`` as an :class:`InjectMode`; InvalidInput for anything else."""
    return parse_choice(InjectMode, "injection mode", value)


class Mailbox:
    """The in-order queue of one agent's unread messages (see the module docstring).

    Args:
        handle: the agent (registered).
        wake: called from the poll thread when messages arrived (or polling
            stopped for good, see :attr:`error`), to wake the terminal loop; must
            not block.
        mode: :class:`InjectMode` (or its value).
        via: the delivery path recorded by :meth:`typed` (:class:`~relaybus.models.Via`:
            ``pty``, ``tmux``).
        worker: where receipts run; by default a worker of its own, closed by :meth:`stop`.
        poll_seconds: longest single long-poll, seconds.
        claim_first: claim a claimable message's task before queueing it (see the
            module docstring).
        claim_notices: with ``claim_first``, type a one-line notice for a task
            another agent won (else nothing).

    Raises:
        InvalidInput: an unknown ``mode``.

    Thread-safe. Call :meth:`start` before use and :meth:`stop` at the end.
    """

    def __init__(
        self,
        handle: AgentHandle,
        wake: Callable[[], None],
        mode: InjectMode | str = InjectMode.WAIT,
        *,
        via: Via | str = Via.PTY,
        worker: Worker | None = None,
        poll_seconds: float = POLL_SECONDS,
        claim_first: bool = False,
        claim_notices: bool = True,
    ) -> None:
        self.handle = handle
        self.mode = parse_mode(mode)
        self.via = via
        self.poll_seconds = poll_seconds
        #: Why polling stopped for good (fenced off by a newer registration, agent
        #: removed, token refused), else None.
        self.error: RelayError | None = None
        self._wake = wake
        self._own_worker = worker is None
        self.worker = worker or Worker("relaybus-receipts")
        self._lock = threading.Lock()
        self._queue: list[Message] = []  # by id
        self._taken: dict[int, Message] = {}  # in flight: handed out by next()
        self._typed: list[Message] = []  # delivered, not read yet
        self._known: set[int] = set()  # every id queued in this program run
        self._cursor = 0  # highest message id seen by the poll
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        #: Claims claimable messages before they are queued (None: types them as sent).
        self.claims = (
            ClaimFirst(handle, notices=claim_notices, discard=self._discard)
            if claim_first
            else None
        )

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Queue the unread mail (oldest first) and start following the inbox.

        Raises:
            RelayError: the first read failed (relay unreachable, agent unknown).
        """
        found = self._fetch_unread()
        with self._lock:
            self._add(found)
        self._thread = threading.Thread(target=self._poll, name="relaybus-mailbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, *, join: bool = False) -> None:
        """Stop following the inbox and send the receipts still queued (at most
        ``timeout`` seconds for them).

        A long-poll in progress is abandoned (its daemon thread ends when the poll
        returns, within ``poll_seconds``) unless ``join``: then this also waits for
        it, within ``timeout``, so the relay can be closed safely right after.
        """
        deadline = time.monotonic() + timeout
        self._stopped.set()
        if self._own_worker:
            self.worker.close(timeout)
        else:
            self.worker.flush(timeout)
        if join and self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))

    # -- the terminal loop's side ------------------------------------------------

    def next(self, idle: bool) -> Message | None:
        """Take the message to type now, if any: see the module docstring.

        Args:
            idle: the program is at an idle boundary.

        The message is in flight until :meth:`typed`; :meth:`restart` puts it back.
        """
        taken = self.take(idle)
        return taken[0] if taken else None

    def take(self, idle: bool, limit: int = 1) -> list[Message]:
        """Take up to ``limit`` messages to type now, oldest first: the ones
        :meth:`next` would hand out one after the other (at an idle boundary or in
        ``steer`` mode the oldest queued; else the urgent ones). Empty if none may go.

        Each is in flight until :meth:`typed`; :meth:`restart` puts them back.
        """
        with self._lock:
            if idle or self.mode is InjectMode.STEER:
                chosen = self._queue[:limit]
            else:
                chosen = [m for m in self._queue if m.priority is Priority.URGENT][:limit]
            if not chosen:
                return []
            ids = {m.id for m in chosen}
            self._queue = [m for m in self._queue if m.id not in ids]
            for message in chosen:
                self._taken[message.id] = message
            return chosen

    def typed(self, message: Message, via: Via | str | None = None) -> None:
        """``message``'s keystrokes, Enter included, reached the program: it is
        delivered (the relay records ``via``, default :attr:`via`), and read at
        the next :meth:`settled`."""
        channel = via or self.via
        with self._lock:
            self._taken.pop(message.id, None)
            self._typed.append(message)
        ids = [message.id]
        self.worker.submit(
            lambda: self.handle.mark_delivered(ids, via=channel),
            f"mark #{message.id} delivered",
        )

    def settled(self) -> list[int]:
        """An idle boundary: everything typed so far is read. Returns their ids."""
        with self._lock:
            ids = [m.id for m in self._typed]
            self._typed.clear()
        if ids:
            via = self.via
            self.worker.submit(lambda: self.handle.mark_read(ids, via=via), f"mark {ids} read")
        return ids

    def restart(self) -> None:
        """A new program run (after a crash): what was in flight or typed but not
        read goes back in the queue, which is rebuilt from the relay's unread mail
        (oldest first) so messages read elsewhere meanwhile are not typed again.
        If the relay cannot be read, the local queue is kept as it is."""
        self.worker.flush(FLUSH_SECONDS)  # earlier read receipts first
        with self._lock:
            seen_before = self._cursor
        try:
            fresh: list[Message] | None = self._fetch_unread()
        except RelayError as exc:
            logger.warning("re-reading the inbox of %s: %s", self.handle.id, exc)
            fresh = None
        with self._lock:
            current = [*self._queue, *self._taken.values(), *self._typed]
            merged = {m.id: m for m in current}
            if fresh is not None:
                # What the poll added during the fetch is newer than seen_before;
                # anything older that is no longer unread was read elsewhere.
                merged = {m.id: m for m in fresh}
                for m in current:
                    if m.id > seen_before:
                        merged.setdefault(m.id, m)
            self._queue = sorted(merged.values(), key=lambda m: m.id)
            self._taken.clear()
            self._typed.clear()
            self._known = set(merged)
            self._cursor = max([self._cursor, *merged])

    # -- counts ----------------------------------------------------------------

    def pending(self) -> int:
        """Messages waiting to be typed (queued or in flight)."""
        with self._lock:
            return len(self._queue) + len(self._taken)

    def unread(self) -> int:
        """Messages not read yet: waiting, or typed and not settled."""
        with self._lock:
            return len(self._queue) + len(self._taken) + len(self._typed)

    # -- the poll thread -------------------------------------------------------

    def _fetch_unread(self) -> list[Message]:
        found: list[Message] = []
        since: int | None = None
        while True:
            page = self.handle.inbox(unread_only=True, newest_first=False, since=since, limit=PAGE)
            found.extend(page)
            if len(page) < PAGE:
                return self._claimed(found)
            since = page[-1].id

    def _claimed(self, found: list[Message]) -> list[Message]:
        """``found`` as it is typed: with claim-first, each claimable message claimed
        (off the lock: a claim is a relay call) and a lost one replaced by its notice
        or left out."""
        if self.claims is None:
            return found
        return self.claims.decide(found)

    def _discard(self, message: Message) -> None:
        """A message the program is not told of (a task lost, quietly): read now."""
        ids, via = [message.id], self.via
        with self._lock:
            self._cursor = max(self._cursor, message.id)
        self.worker.submit(lambda: self.handle.mark_read(ids, via=via), f"mark #{message.id} read")

    def _add(self, found: list[Message]) -> bool:
        """Queue the messages not seen in this run (caller holds the lock)."""
        added = False
        for message in found:
            self._cursor = max(self._cursor, message.id)
            if message.id in self._known:
                continue
            self._known.add(message.id)
            bisect.insort(self._queue, message, key=lambda m: m.id)
            added = True
        return added

    def _poll(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                since = self._cursor
            try:
                found = self.handle.wait(self.poll_seconds, since=since)
            except PERMANENT as exc:
                if not self._stopped.is_set():
                    logger.error("stopped following the inbox of %s: %s", self.handle.id, exc)
                    self.error = exc
                    self._wake()
                return
            except RelayError as exc:
                if self._stopped.is_set():
                    return
                logger.warning("reading the inbox of %s: %s", self.handle.id, exc)
                self._stopped.wait(RETRY_SECONDS)
                continue
            except Exception:  # the thread's top-level boundary
                if self._stopped.is_set():
                    return  # the relay was closed under a long-poll
                logger.exception("reading the inbox of %s", self.handle.id)
                self._stopped.wait(RETRY_SECONDS)
                continue
            found = self._claimed(found)
            if found:
                with self._lock:
                    added = self._add(found)
                if added:
                    self._wake()
