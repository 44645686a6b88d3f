"""The event log: read it from a cursor, or wait for what comes next."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ..bounds import MAX_LIMIT
from ..models import Event
from ..store.schema import events
from ..store.statements import register, run
from .common import ServiceBase, check_id, check_limit, check_text, check_timeout

MAX_EVENTS = MAX_LIMIT
_COLUMNS = tuple(c.name for c in events.columns)


# Built once (the limit a parameter): the hub reads the tail after every commit,
# and a statement built per call costs more than the query (store/statements.py).
_TAIL = register(
    "events.tail",
    sa.select(events)
    .where(events.c.id > sa.bindparam("since"))
    .order_by(events.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer)),
)


class EventOps(ServiceBase):
    def events(
        self,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Events with an id above the cursor ``since``, oldest first.

        Args:
            kinds: only these kinds (``message.sent``, ``task.claimed``…); a
                kind ending in ``.`` matches a family (``task.``).

        Raises:
            InvalidInput: ``limit`` outside 1–1000, ``since`` outside 0-``MAX_ID``, a
                kind with a NUL character or an unpaired surrogate.
        """
        check_limit(limit, MAX_EVENTS)
        check_id("since", since, minimum=0)
        for kind in kinds or ():
            check_text("kind", kind)
        query = sa.select(events).where(events.c.workspace == workspace, events.c.id > since)
        if kinds:
            query = query.where(
                sa.or_(
                    *(
                        events.c.kind.startswith(k, autoescape=True)
                        if k.endswith(".")
                        else events.c.kind == k
                        for k in kinds
                    )
                )
            )
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(events.c.id).limit(limit)).all()
        return [Event.model_validate(dict(r._mapping)) for r in rows]

    def log_tail(self, since: int, limit: int = MAX_EVENTS) -> list[Event]:
        """Events of every workspace with an id above ``since``, oldest first: what a
        server's one reader of the log fans out to its live connections.

        Raises:
            InvalidInput: ``limit`` outside 1–1000, ``since`` outside 0-``MAX_ID``.
        """
        check_limit(limit, MAX_EVENTS)
        check_id("since", since, minimum=0)
        with self.store.read() as conn:
            rows = run(conn, _TAIL, {"since": since, "limit": limit})
        return [Event.model_validate(dict(zip(_COLUMNS, r, strict=True))) for r in rows]

    def log_head(self) -> int:
        """The newest event id of every workspace (0 for an empty log)."""
        with self.store.read() as conn:
            found = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
        return int(found or 0)

    def last_event_id(self, *, workspace: str = "default") -> int:
        """The newest event id (0 for an empty log): a cursor for "from now on"."""
        with self.store.read() as conn:
            found = conn.execute(
                sa.select(sa.func.max(events.c.id)).where(events.c.workspace == workspace)
            ).scalar()
        return int(found or 0)

    def wait_events(
        self,
        timeout: float,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Like :meth:`events`, but block up to ``timeout`` seconds until there is one.

        Raises:
            InvalidInput: as :meth:`events`, or a ``timeout`` that is not a number.
        """
        timeout = check_timeout(timeout)
        check_limit(limit, MAX_EVENTS)
        check_id("since", since, minimum=0)
        found: list[Event] = self.store.wait_for(
            lambda: self.events(workspace=workspace, since=since, limit=limit, kinds=kinds),
            timeout,
        )
        return found
