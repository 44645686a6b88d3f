"""Looking messages up: one by id, a thread, which of some ids an agent may see,
and messages by id for live pushes (:class:`MessageLookupOps`, part of
:class:`~relaybus.service.messages.MessageOps`).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Message
from ..store.schema import deliveries, messages
from ..store.statements import register, run
from .common import ServiceBase, check_id, message_from_row
from .targets import recipients
from .visibility import restrict, visible_ids, visible_message

_MESSAGE_COLUMNS = tuple(c.name for c in messages.columns)
_MESSAGE_BY_ID = register(
    "messages.by_id", sa.select(messages).where(messages.c.id == sa.bindparam("id"))
)


def stored_message(conn: Connection, message_id: int) -> Message | None:
    """Message ``message_id`` in any workspace, as stored, with its recipients (no
    delivery state); None when there is none (never sent, or pruned)."""
    rows = run(conn, _MESSAGE_BY_ID, {"id": message_id})
    if not rows:
        return None
    row = dict(zip(_MESSAGE_COLUMNS, rows[0], strict=True))
    return message_from_row(row, recipients=recipients(conn, message_id))


class MessageLookupOps(ServiceBase):
    """Looking messages up (see the module docstring)."""

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
                message = stored_message(conn, message_id)
                if message is not None:
                    found[message_id] = message
        return found
