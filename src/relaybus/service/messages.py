"""Messages: send (fan-out into deliveries, optionally creating a task), get, thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import bounds
from ..errors import Conflict, InvalidInput, NotFound, RelayError, TooLarge
from ..models import Message, Priority
from ..store.engine import driver
from ..store.schema import deliveries, messages
from ..store.statements import register, run, run_many
from .common import (
    ServiceBase,
    append_event,
    check_choice,
    check_id,
    check_meta,
    check_name,
    check_text,
    message_from_row,
    touch_agent,
)
from .idempotency import (
    KEY_TAKEN,
    check_key,
    check_same_request,
    find_key,
    remember_key,
    request_hash,
)
from .targets import Target, deliver, is_set, parse_target, resolve
from .tasks import create_task
from .visibility import no_message, restrict, visible_ids, visible_message, visible_to

MAX_SUBJECT_CHARS = bounds.MAX_SUBJECT_CHARS
#: Most messages in one :meth:`MessageOps.send_many` batch.
MAX_BATCH = 500
_ITEM_KEYS = frozenset(
    {"to", "body", "subject", "channel", "reply_to", "priority", "meta", "claimable"}
)


class _Draft(NamedTuple):
    """A checked message not yet stored."""

    target: Target | None
    body: str
    subject: str | None
    channel: str | None
    reply_to: int | None
    priority: str
    meta: dict[str, Any]
    claimable: bool


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


_INSERT_MESSAGE = register("messages.insert", messages.insert().returning(messages.c.id))
_INSERT_DELIVERY = register("deliveries.insert", deliveries.insert())
_MESSAGE_COLUMNS = tuple(c.name for c in messages.columns)
_MESSAGE_BY_ID = register(
    "messages.by_id", sa.select(messages).where(messages.c.id == sa.bindparam("id"))
)
_RECIPIENTS_OF = register(
    "deliveries.recipients",
    sa.select(deliveries.c.agent_id)
    .where(deliveries.c.message_id == sa.bindparam("id"))
    .order_by(deliveries.c.agent_id),
)


class MessageOps(ServiceBase):
    """Sending and looking up messages."""

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
        drafts: list[_Draft],
        key: str,
        digest: str | None = None,
    ) -> list[Message]:
        # The key is looked up and bound in the transaction that stores the messages,
        # under the store's write lock, so of two racing retries the second sees the
        # first's row. The primary key backs that up: a binding that loses anyway
        # rolls everything back and answers with the winner's messages. ``digest``:
        # the key already checked and the request hashed (send_group did both).
        if digest is None:
            check_key(key)
            digest = request_hash(kind, drafts)
        try:
            with self.store.write() as conn:
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
        drafts: list[_Draft],
        key: str,
        digest: str,
    ) -> list[Message]:
        # The keyed send inside the caller's write transaction: replay, or store and bind.
        now = self.now()
        used = find_key(conn, workspace, sender, key, now)
        if used is not None:
            check_same_request(used, digest, key)
            return self._replay(conn, key, used.message_ids)
        touch_agent(conn, workspace, sender, epoch, now)
        sent = [self._store(conn, workspace, sender, d, now) for d in drafts]
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

    def send_group(self, sends: Sequence[GroupSend]) -> list[Message | RelayError]:
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

        Args:
            sends: the sends, in the order to store them (a group of one is
                :meth:`send` itself: its own transaction, no savepoint).

        Returns:
            one entry per send, in order: the stored (or replayed) message, or
            the :class:`~relaybus.errors.RelayError` :meth:`send` would have raised.

        Raises:
            StoreError, sqlalchemy.exc.DBAPIError: the database failed; nothing
                of the group is stored.
        """
        outcomes: list[Message | RelayError | None] = [None] * len(sends)
        ready: list[tuple[int, GroupSend, _Draft, str | None]] = []
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
                outcomes[index] = self._send_drafted(one, draft, digest)
            except RelayError as exc:
                outcomes[index] = exc
        elif ready:
            with self.store.write() as conn:
                for index, one, draft, digest in ready:
                    try:
                        with _savepoint(conn, self.store.dialect):
                            outcomes[index] = self._send_in(conn, one, draft, digest)
                    except RelayError as exc:
                        outcomes[index] = exc
                    except KEY_TAKEN:
                        # Bound by a writer outside the store's lock since find_key.
                        assert one.idempotency_key is not None and digest is not None
                        try:
                            outcomes[index] = self._replayed(
                                conn, one.workspace, one.sender, one.idempotency_key, digest
                            )[0]
                        except RelayError as exc:
                            outcomes[index] = exc
        return [outcome for outcome in outcomes if outcome is not None]

    def _send_drafted(self, one: GroupSend, draft: _Draft, digest: str | None = None) -> Message:
        # A group of one: what send() does after drafting (``digest``: see _send_once).
        if one.idempotency_key is not None:
            key = one.idempotency_key
            return self._send_once(
                one.workspace, one.sender, one.epoch, "send", [draft], key, digest
            )[0]
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, one.workspace, one.sender, one.epoch, now)
            return self._store(conn, one.workspace, one.sender, draft, now)

    def _send_in(
        self, conn: Connection, one: GroupSend, draft: _Draft, digest: str | None
    ) -> Message:
        # One send of a group, inside the group's transaction (and its savepoint).
        if one.idempotency_key is None:
            now = self.now()
            touch_agent(conn, one.workspace, one.sender, one.epoch, now)
            return self._store(conn, one.workspace, one.sender, draft, now)
        assert digest is not None
        return self._once(
            conn, one.workspace, one.sender, one.epoch, [draft], one.idempotency_key, digest
        )[0]

    def _replay(self, conn: Connection, key: str, ids: list[int]) -> list[Message]:
        # The messages a key stored, as the first answer gave them (no delivery state).
        found = []
        for message_id in ids:
            rows = run(conn, _MESSAGE_BY_ID, {"id": message_id})
            if not rows:
                raise Conflict(
                    f"idempotency key {key!r} was used for message {message_id}, which "
                    "retention has deleted since; a new request needs a new key",
                    idempotency_key=key,
                    message_id=message_id,
                )
            row = dict(zip(_MESSAGE_COLUMNS, rows[0], strict=True))
            recipients = [r[0] for r in run(conn, _RECIPIENTS_OF, {"id": message_id})]
            found.append(message_from_row(row, recipients=recipients))
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
    ) -> _Draft:
        # Everything that needs no database: checked before the write lock is taken.
        check_text("the message body", body)
        limit = self.settings.max_body_bytes
        size = len(body.encode("utf-8"))
        if size > limit:
            raise TooLarge(f"message body is {size} bytes; the limit is {limit}", limit=limit)
        if subject is not None and len(check_text("the subject", subject)) > MAX_SUBJECT_CHARS:
            raise InvalidInput(f"a subject has at most {MAX_SUBJECT_CHARS} characters")
        prio = check_choice(Priority, "priority", priority).value
        meta_obj = check_meta(meta, limit)
        if reply_to is not None:
            check_id("reply_to", reply_to)
        if channel is not None:
            check_name("channel", channel)
        target = parse_target(to) if to is not None else None
        if target is None and reply_to is None:
            raise InvalidInput("a message needs a target (--to) or a message to reply to")
        return _Draft(target, body, subject, channel, reply_to, prio, meta_obj, claimable)

    def _store(
        self, conn: Connection, workspace: str, sender: str, draft: _Draft, now: float
    ) -> Message:
        target, body, subject, channel, reply_to, prio, meta_obj, claimable = draft
        thread_id: int | None = None
        if reply_to is not None:
            # Only to a message the sender may see; a hidden one is answered as missing.
            parent = conn.execute(
                sa.select(messages.c.sender, messages.c.target, messages.c.thread_id).where(
                    messages.c.workspace == workspace,
                    messages.c.id == reply_to,
                    visible_to(sender),
                )
            ).first()
            if parent is None:
                raise no_message(reply_to, "to reply to")
            thread_id = parent.thread_id if parent.thread_id is not None else reply_to
            if target is None:
                target = parse_target(parent.sender if parent.sender != sender else parent.target)
        assert target is not None
        # A direct message resolves its one row first; a set-based target writes its
        # deliveries with one INSERT ... SELECT once the message has an id.
        direct = None if is_set(target) else resolve(conn, workspace, target, channel, sender)
        row = {
            "workspace": workspace,
            "sender": sender,
            "target": str(target),
            "channel": channel,
            "subject": subject,
            "body": body,
            "reply_to": reply_to,
            "thread_id": thread_id,
            "priority": prio,
            "meta": meta_obj,
            "task_id": None,
            "created_at": now,
        }
        message_id = int(run(conn, _INSERT_MESSAGE, row)[0][0])
        row["id"] = message_id
        if direct is None:
            try:
                recipients = deliver(conn, workspace, target, channel, sender, message_id)
            except NotFound:
                # Nothing else is written yet: leave no message row behind, even for a
                # caller that goes on with its transaction.
                conn.execute(messages.delete().where(messages.c.id == message_id))
                raise
        else:
            recipients = direct
            run_many(
                conn,
                _INSERT_DELIVERY,
                [
                    {
                        "workspace": workspace,
                        "agent_id": a,
                        "message_id": message_id,
                        "read_at": None,
                    }
                    for a in recipients
                ],
            )
        if claimable:
            title = subject or (body.strip().splitlines() or ["(untitled task)"])[0][:200]
            task_id = create_task(
                conn,
                workspace,
                now,
                title=title,
                body=body,
                target=str(target),
                channel=channel,
                message_id=message_id,
                creator=sender,
                meta=meta_obj,
            )
            conn.execute(
                messages.update().where(messages.c.id == message_id).values(task_id=task_id)
            )
            row["task_id"] = task_id
        append_event(
            conn,
            workspace,
            "message.sent",
            now,
            sender,
            message_id=message_id,
            to=str(target),
            recipients=recipients,
            thread_id=thread_id or message_id,
            channel=channel,
            subject=subject,
            priority=prio,
            task_id=row["task_id"],
        )
        return message_from_row(row, recipients=recipients)

    def get_message(
        self, message_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> Message:
        """One message by id, with its recipients.

        Args:
            viewer: read as this agent: only a message it may see (see
                :mod:`relaybus.service.visibility`); ``None`` reads as admin.

        Raises:
            NotFound: no such message, or one ``viewer`` may not see (the same answer).
            InvalidInput: ``message_id`` is not an id (1 to ``MAX_ID``).
        """
        check_id("message id", message_id)
        with self.store.read() as conn:
            row = visible_message(conn, workspace, message_id, viewer)
            recipients = (
                conn.execute(
                    sa.select(deliveries.c.agent_id)
                    .where(deliveries.c.message_id == message_id)
                    .order_by(deliveries.c.agent_id)
                )
                .scalars()
                .all()
            )
        return message_from_row(row._mapping, recipients=list(recipients))

    def thread(
        self, message_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> list[Message]:
        """Every message of the thread ``message_id`` belongs to, oldest first.

        ``message_id`` may be any message of the thread, not only its root.

        Args:
            viewer: read as this agent: ``message_id`` must be a message it may
                see, and only the messages of the thread it may see are listed;
                ``None`` reads as admin.

        Raises:
            NotFound: no such message, or one ``viewer`` may not see (the same answer).
        """
        root = self.get_message(message_id, workspace=workspace, viewer=viewer).thread_id
        with self.store.read() as conn:
            query = sa.select(messages).where(
                messages.c.workspace == workspace,
                sa.or_(messages.c.id == root, messages.c.thread_id == root),
            )
            rows = conn.execute(restrict(query, viewer).order_by(messages.c.id)).all()
        return [message_from_row(r._mapping) for r in rows]

    def visible_message_ids(
        self, ids: Iterable[int], *, workspace: str = "default", viewer: str
    ) -> set[int]:
        """The ids among ``ids`` of messages of ``workspace`` that ``viewer`` may see
        (see :mod:`relaybus.service.visibility`); pruned ones are left out."""
        with self.store.read() as conn:
            return visible_ids(conn, workspace, viewer, ids)

    def messages_by_id(self, ids: Iterable[int]) -> dict[int, Message]:
        """Messages by id in any workspace, with their recipients (for live pushes).

        Ids that do not exist (pruned) are missing from the result.
        """
        found: dict[int, Message] = {}
        wanted = sorted(set(ids))
        if not wanted:
            return found
        # Usually one or two ids (the messages of one commit): statements built
        # once and run per id beat building an IN query per call.
        with self.store.read() as conn:
            for message_id in wanted:
                rows = run(conn, _MESSAGE_BY_ID, {"id": message_id})
                if not rows:
                    continue
                recipients = [r[0] for r in run(conn, _RECIPIENTS_OF, {"id": message_id})]
                row = dict(zip(_MESSAGE_COLUMNS, rows[0], strict=True))
                found[message_id] = message_from_row(row, recipients=recipients)
        return found


#: The savepoint each send of a group runs in (see :meth:`MessageOps.send_group`).
_SAVEPOINT = "relaybus_send"


@contextlib.contextmanager
def _savepoint(conn: Connection, dialect: str) -> Iterator[None]:
    # A block rolled back alone if it raises, inside the caller's transaction. On
    # SQLite straight on the driver, where Store.write begins and ends the
    # transaction too (SQLAlchemy's begin_nested costs more than the send's inserts);
    # on PostgreSQL SQLAlchemy's own, which also clears an aborted transaction.
    if dialect != "sqlite":
        with conn.begin_nested():
            yield
        return
    dbapi = driver(conn)
    dbapi.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        dbapi.execute(f"ROLLBACK TO {_SAVEPOINT}")
        dbapi.execute(f"RELEASE {_SAVEPOINT}")
        raise
    dbapi.execute(f"RELEASE {_SAVEPOINT}")
