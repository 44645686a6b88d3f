"""Messages: send (one, a batch, a group of independent sends; at most once with an
idempotency key), get, thread.

The sends are here (:class:`MessageOps`); what one message checks and writes is
:mod:`.drafts`, the lookups :mod:`.lookups` (:class:`~.lookups.MessageLookupOps`,
a base of :class:`MessageOps`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from ..errors import Conflict, InvalidInput, RelayError
from ..models import Event, Message, Priority
from ..store.engine import driver
from .common import (
    appended_count,
    check_id,
    fence,
    forget_appended,
    logged_events,
    recording_events,
    touch_agent,
)
from .drafts import MAX_SUBJECT_CHARS, MessageDraft, Reached, make_draft, store_message
from .idempotency import (
    KEY_TAKEN,
    check_key,
    check_same_request,
    find_key,
    remember_key,
    request_hash,
)
from .lookups import MessageLookupOps, stored_message

#: Most messages in one :meth:`MessageOps.send_many` batch.
MAX_BATCH = 500
#: The agents a group's transaction has fenced and marked seen: (workspace, agent id)
#: -> the agent's current epoch.
_Touched = dict[tuple[str, str], int]
_ITEM_KEYS = frozenset(
    {"to", "body", "subject", "channel", "reply_to", "priority", "meta", "claimable"}
)


class GroupSend(NamedTuple):
    """One send of :meth:`MessageOps.send_group`: the arguments of :meth:`MessageOps.send`."""

    sender: str
    to: str | None
    body: str
    workspace: str = "default"
    epoch: int | None = None
    subject: str | None = None
    channel: str | None = None
    reply_to: int | None = None
    priority: Priority | str = Priority.NORMAL
    meta: Mapping[str, Any] | None = None
    claimable: bool = False
    idempotency_key: str | None = None


class MessageOps(MessageLookupOps):
    """Sending messages, and looking them up (:class:`~.lookups.MessageLookupOps`)."""

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
    ) -> Message:
        """Send ``body`` from ``sender`` to the agents ``to`` resolves to now.

        One delivery row is written per recipient in the same transaction as
        the message, so once this returns every recipient has it in its inbox,
        whatever happens to this process next.

        Args:
            to: a target expression (see :mod:`relaybus.service.targets`); with
                ``reply_to`` it may be omitted and defaults to the parent's
                sender (or, replying to one's own message, the parent's target).
            body: text of at most ``settings.max_body_bytes`` bytes (UTF-8).
            reply_to: the id of the message this answers; the new message joins
                that message's thread.
            claimable: also create a task (title = subject or the body's first
                line) that exactly one recipient can claim; ``task_id`` is set.
            idempotency_key: send at most once: a send with the same key from the
                same sender (and workspace) within 24 h stores nothing and returns
                the original message, as it was stored (see
                :mod:`~relaybus.service.idempotency`); 1-255 printable ASCII
                characters, e.g. a uuid4 made once per logical send.

        Returns:
            the stored message with ``recipients`` (sorted).

        Raises:
            InvalidInput: a malformed target, channel, priority or idempotency key,
                text with a NUL character or an unpaired surrogate, or a meta that
                is not a JSON object (see :func:`~relaybus.service.common.check_meta`).
            TooLarge: ``body`` or ``meta`` over ``max_body_bytes``.
            NotFound: the sender, the target or ``reply_to`` does not exist, or
                ``reply_to`` is a message the sender may not see (the same answer).
            Conflict: stale ``epoch``; ``idempotency_key`` already used by this
                sender for a different request.
        """
        draft = self._draft(to, body, subject, channel, reply_to, priority, meta, claimable)
        if idempotency_key is not None:
            return self._send_once(workspace, sender, epoch, "send", [draft], idempotency_key)[0]
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, sender, epoch, now)
            return self._store(conn, workspace, sender, draft, now)

    def send_many(
        self,
        sender: str,
        items: Sequence[Mapping[str, Any]],
        *,
        workspace: str = "default",
        epoch: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Send several messages from ``sender`` in one transaction: all or none.

        Args:
            items: 1–:data:`MAX_BATCH` mappings with the keyword arguments of
                :meth:`send` (``to``, ``body``, ``subject``, ``channel``,
                ``reply_to``, ``priority``, ``meta``, ``claimable``); a reply may
                point at a message earlier in the same batch only by id, so in
                practice at messages already sent.
            idempotency_key: one key for the whole batch, as for :meth:`send`:
                a retry of the same batch returns the original messages.

        Returns:
            the stored messages, in the order of ``items``.

        Raises:
            InvalidInput: an empty or oversized batch, an unknown key, or any
                item :meth:`send` would refuse (the message names its index).
            TooLarge, NotFound, Conflict: as :meth:`send`; nothing is stored.
        """
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidInput(f"a batch has 1-{MAX_BATCH} messages, not {len(items)}")
        drafts = []
        for index, item in enumerate(items):
            unknown = sorted(set(item) - _ITEM_KEYS)
            if unknown:
                raise InvalidInput(f"message {index}: unknown field {unknown[0]!r}", index=index)
            if "body" not in item:
                raise InvalidInput(f"message {index}: a message needs a body", index=index)
            try:
                drafts.append(
                    self._draft(
                        item.get("to"),
                        item["body"],
                        item.get("subject"),
                        item.get("channel"),
                        item.get("reply_to"),
                        item.get("priority", Priority.NORMAL),
                        item.get("meta"),
                        bool(item.get("claimable", False)),
                    )
                )
            except RelayError as exc:
                exc.message = f"message {index}: {exc.message}"
                exc.args = (exc.message,)
                exc.details.setdefault("index", index)
                raise
        if idempotency_key is not None:
            return self._send_once(workspace, sender, epoch, "batch", drafts, idempotency_key)
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, sender, epoch, now)
            return [self._store(conn, workspace, sender, d, now) for d in drafts]

    def _send_once(
        self,
        workspace: str,
        sender: str,
        epoch: int | None,
        kind: str,
        drafts: list[MessageDraft],
        key: str,
        digest: str | None = None,
        log: list[Event] | None = None,
    ) -> list[Message]:
        # The key is looked up and bound in the transaction that stores the messages,
        # under the store's write lock, so of two racing retries the second sees the
        # first's row. The primary key backs that up: a binding that loses anyway
        # rolls everything back and answers with the winner's messages. ``digest``:
        # the key already checked and the request hashed (send_group did both); ``log``:
        # see send_group.
        if digest is None:
            check_key(key)
            digest = request_hash(kind, drafts)
        try:
            with self._write(log) as conn:
                return self._once(conn, workspace, sender, epoch, drafts, key, digest)
        except KEY_TAKEN:
            with self.store.read() as conn:
                used = find_key(conn, workspace, sender, key, self.now())
                if used is None:
                    raise
                check_same_request(used, digest, key)
                return self._replay(conn, key, used.message_ids)

    def _once(
        self,
        conn: Connection,
        workspace: str,
        sender: str,
        epoch: int | None,
        drafts: list[MessageDraft],
        key: str,
        digest: str,
        touched: _Touched | None = None,
        reached: Reached | None = None,
    ) -> list[Message]:
        # The keyed send inside the caller's write transaction: replay, or store and bind.
        now = self.now()
        used = find_key(conn, workspace, sender, key, now)
        if used is not None:
            check_same_request(used, digest, key)
            return self._replay(conn, key, used.message_ids)
        _touch(conn, workspace, sender, epoch, now, touched)
        sent = [self._store(conn, workspace, sender, d, now, reached) for d in drafts]
        remember_key(conn, workspace, sender, key, digest, [m.id for m in sent], now)
        return sent

    def _replayed(
        self, conn: Connection, workspace: str, sender: str, key: str, digest: str
    ) -> list[Message]:
        # After losing the race to bind ``key``: the winner's messages (or the error).
        used = find_key(conn, workspace, sender, key, self.now())
        if used is None:
            raise Conflict(
                f"idempotency key {key!r} is being bound by another request; retry",
                idempotency_key=key,
            )
        check_same_request(used, digest, key)
        return self._replay(conn, key, used.message_ids)

    def send_group(
        self, sends: Sequence[GroupSend], *, log: list[Event] | None = None
    ) -> list[Message | RelayError]:
        """Store independent sends (any senders, any workspaces) in one transaction,
        each with its own outcome: what :meth:`send` would return or raise for it,
        had the sends run one after another in this order.

        One commit for the group instead of one per send (group commit, as
        databases do with their log: Gray and Reuter, *Transaction Processing*,
        9.4.7). Each send runs inside a SAVEPOINT of the group's transaction, so
        a refused one leaves no trace (not even its agent's ``last_seen_at``) and
        does not affect the others. Message ids follow the order of ``sends``;
        nothing is stored before the whole group commits, so a caller
        acknowledges a send only after this returns. A send with an
        ``idempotency_key`` already used in the group (or before) by the same
        sender gets the first one's messages, as a retry does.

        An agent that sends several times in a group is fenced for each send (a
        stale epoch is refused for that send alone) but fenced and marked seen in
        the database once, by its first stored send: its ``last_seen_at`` is that
        send's time (the group's sends are stored within a commit's time).

        Args:
            sends: the sends, in the order to store them (a group of one is
                :meth:`send` itself: its own transaction, no savepoint).
            log: if given, the events the group's transaction appended are added
                to it once it has committed, in id order, as
                :meth:`~relaybus.service.events.EventOps.log_tail` would read them
                (for a caller that fans them out without reading them back).

        Returns:
            one entry per send, in order: the stored (or replayed) message, or
            the :class:`~relaybus.errors.RelayError` :meth:`send` would have raised.

        Raises:
            StoreError, sqlalchemy.exc.DBAPIError: the database failed; nothing
                of the group is stored.
        """
        outcomes: list[Message | RelayError | None] = [None] * len(sends)
        ready: list[tuple[int, GroupSend, MessageDraft, str | None]] = []
        for index, one in enumerate(sends):
            try:
                draft = self._draft(
                    one.to,
                    one.body,
                    one.subject,
                    one.channel,
                    one.reply_to,
                    one.priority,
                    one.meta,
                    one.claimable,
                )
                digest = None
                if one.idempotency_key is not None:
                    check_key(one.idempotency_key)
                    digest = request_hash("send", [draft])
            except RelayError as exc:
                outcomes[index] = exc
                continue
            ready.append((index, one, draft, digest))
        if len(ready) == 1:
            index, one, draft, digest = ready[0]
            try:
                outcomes[index] = self._send_drafted(one, draft, digest, log)
            except RelayError as exc:
                outcomes[index] = exc
        elif ready:
            # Optimistic on SQLite only: a rollback there gives the ids back, where
            # PostgreSQL's sequences would leave the group's ids used (a gap).
            try:
                self._store_group(ready, outcomes, log, alone=self.store.dialect != "sqlite")
            except _Refused:
                self._store_group(ready, outcomes, log, alone=True)
        return [outcome for outcome in outcomes if outcome is not None]

    def _store_group(
        self,
        ready: list[tuple[int, GroupSend, MessageDraft, str | None]],
        outcomes: list[Message | RelayError | None],
        log: list[Event] | None,
        *,
        alone: bool,
    ) -> None:
        # The drafted sends of a group in one transaction, each outcome at its index.
        # Optimistic first (``alone`` False): no savepoint, and the first refusal rolls
        # the whole group back (_Refused) for a second pass where each send runs in a
        # savepoint of its own. Most groups have no refusal: two statements fewer a send.
        touched: _Touched = {}
        reached: Reached = {}
        with self._write(log) as conn:
            for index, one, draft, digest in ready:
                if not alone:
                    try:
                        outcomes[index] = self._send_in(conn, one, draft, digest, touched, reached)
                    except RelayError as exc:
                        raise _Refused from exc
                    except KEY_TAKEN as exc:
                        raise _Refused from exc
                    continue
                agent = (one.workspace, one.sender)
                known = agent in touched
                try:
                    with _savepoint(conn, self.store.dialect):
                        outcomes[index] = self._send_in(conn, one, draft, digest, touched, reached)
                except RelayError as exc:
                    outcomes[index] = exc
                    if not known:  # its touch was rolled back with the send
                        touched.pop(agent, None)
                except KEY_TAKEN:
                    # Bound by a writer outside the store's lock since find_key.
                    if not known:
                        touched.pop(agent, None)
                    assert one.idempotency_key is not None and digest is not None
                    try:
                        outcomes[index] = self._replayed(
                            conn, one.workspace, one.sender, one.idempotency_key, digest
                        )[0]
                    except RelayError as exc:
                        outcomes[index] = exc

    def _send_drafted(
        self,
        one: GroupSend,
        draft: MessageDraft,
        digest: str | None = None,
        log: list[Event] | None = None,
    ) -> Message:
        # A group of one: what send() does after drafting (``digest``: see _send_once).
        if one.idempotency_key is not None:
            key = one.idempotency_key
            return self._send_once(
                one.workspace, one.sender, one.epoch, "send", [draft], key, digest, log
            )[0]
        with self._write(log) as conn:
            now = self.now()
            touch_agent(conn, one.workspace, one.sender, one.epoch, now)
            return self._store(conn, one.workspace, one.sender, draft, now)

    def _send_in(
        self,
        conn: Connection,
        one: GroupSend,
        draft: MessageDraft,
        digest: str | None,
        touched: _Touched,
        reached: Reached,
    ) -> Message:
        # One send of a group, inside the group's transaction (and its savepoint).
        if one.idempotency_key is None:
            now = self.now()
            _touch(conn, one.workspace, one.sender, one.epoch, now, touched)
            return self._store(conn, one.workspace, one.sender, draft, now, reached)
        assert digest is not None
        key = one.idempotency_key
        return self._once(
            conn, one.workspace, one.sender, one.epoch, [draft], key, digest, touched, reached
        )[0]

    @contextlib.contextmanager
    def _write(self, log: list[Event] | None) -> Iterator[Connection]:
        # store.write(); with ``log``, the events appended are added to it after the
        # commit (not at all if the transaction fails).
        if log is None:
            with self.store.write() as conn:
                yield conn
            return
        with self.store.write() as conn, recording_events(conn) as appended:
            yield conn
        log.extend(logged_events(appended))

    def _replay(self, conn: Connection, key: str, ids: list[int]) -> list[Message]:
        # The messages a key stored, as the first answer gave them (no delivery state).
        found = []
        for message_id in ids:
            message = stored_message(conn, message_id)
            if message is None:
                raise Conflict(
                    f"idempotency key {key!r} was used for message {message_id}, which "
                    "retention has deleted since; a new request needs a new key",
                    idempotency_key=key,
                    message_id=message_id,
                )
            found.append(message)
        return found

    def _draft(
        self,
        to: str | None,
        body: str,
        subject: str | None,
        channel: str | None,
        reply_to: int | None,
        priority: Priority | str,
        meta: Mapping[str, Any] | None,
        claimable: bool,
    ) -> MessageDraft:
        # Checked before the write lock is taken (see make_draft), against this store's limit.
        limit = self.settings.max_body_bytes
        return make_draft(
            to, body, subject, channel, reply_to, priority, meta, claimable, limit=limit
        )

    #: Stores a draft in the caller's transaction (see store_message).
    _store = staticmethod(store_message)


class _Refused(Exception):
    """A send of a group stored without savepoints was refused: roll the group back."""


#: The savepoint each send of a group runs in (see :meth:`MessageOps.send_group`).
_SAVEPOINT = "relaybus_send"


def _touch(
    conn: Connection,
    workspace: str,
    sender: str,
    epoch: int | None,
    now: float,
    touched: _Touched | None,
) -> None:
    # touch_agent, once per agent of a group (``touched``, None outside a group): a
    # later send of the same agent is fenced against the epoch its first one read
    # (nothing in the transaction changes an epoch) and leaves last_seen_at be.
    agent = (workspace, sender)
    current = None if touched is None else touched.get(agent)
    if current is None:
        current = touch_agent(conn, workspace, sender, epoch, now)
        if touched is not None:
            touched[agent] = current
        return
    if epoch is not None:
        check_id("epoch", epoch, minimum=0)
    fence(sender, epoch, current)


@contextlib.contextmanager
def _savepoint(conn: Connection, dialect: str) -> Iterator[None]:
    # A block rolled back alone if it raises, inside the caller's transaction (with
    # the events recorded for it: see recording_events). On SQLite straight on the
    # driver, where Store.write begins and ends the transaction too (SQLAlchemy's
    # begin_nested costs more than the send's inserts); on PostgreSQL SQLAlchemy's
    # own, which also clears an aborted transaction.
    recorded = appended_count(conn)
    if dialect != "sqlite":
        try:
            with conn.begin_nested():
                yield
        except BaseException:
            forget_appended(conn, recorded)
            raise
        return
    dbapi = driver(conn)
    dbapi.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        dbapi.execute(f"ROLLBACK TO {_SAVEPOINT}")
        dbapi.execute(f"RELEASE {_SAVEPOINT}")
        forget_appended(conn, recorded)
        raise
    dbapi.execute(f"RELEASE {_SAVEPOINT}")


__all__ = ["MAX_BATCH", "MAX_SUBJECT_CHARS", "GroupSend", "MessageOps"]
