"""What a live connection receives from the hub: each event serialised once
(:class:`Item`, shared by every subscriber) and a connection's bounded queue of them
(:class:`Subscription`). The hub (:mod:`relaybus.server.hub`) makes both; its module
docstring tells how a connection resumes without a gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from .hub import Hub

#: The hub's logger: a slow subscriber dropped is the hub's decision.
logger = logging.getLogger("relaybus.server.hub")

EVERYONE: Final = "everyone"
#: Which agents of a workspace may see an event (admins always may): these, or all.
Audience = frozenset[str] | Literal["everyone"]


@dataclass(slots=True, eq=False, repr=False)
class Item:
    """One event ready to send, serialised once and shared by every subscriber.

    ``json`` is ``Event.model_dump(mode="json")`` as compact JSON text (with
    ``data["message"]`` for ``message.sent``); :attr:`sse` and :attr:`ws` are
    the wire frames, built on first use and cached.
    """

    id: int
    workspace: str
    kind: str
    json: str
    audience: Audience
    _sse: bytes | None = field(default=None, init=False)
    _ws: str | None = field(default=None, init=False)

    @property
    def sse(self) -> bytes:
        """The Server-Sent Events frame: ``id``, ``event`` (the kind) and ``data`` lines."""
        if self._sse is None:
            self._sse = f"id: {self.id}\nevent: {self.kind}\ndata: {self.json}\n\n".encode()
        return self._sse

    @property
    def ws(self) -> str:
        """The WebSocket text frame ``{"type":"event","event":{...}}``."""
        if self._ws is None:
            self._ws = '{"type":"event","event":' + self.json + "}"
        return self._ws

    def __repr__(self) -> str:
        return f"Item({self.id}, {self.kind!r})"


@dataclass(eq=False, repr=False)
class Subscription:
    """A live connection's queue of events; get one from :meth:`Hub.subscribe`.

    Attributes:
        workspace: the only workspace whose events it receives.
        agent_id: the agent it watches as (``None``: an admin seeing everything).
        transport: ``"sse"`` or ``"ws"``.
        start: the last event id fanned out when it subscribed; live events
            queued here all have larger ids (replay the log up to ``start``).
        reason: why the hub ended it (``None`` while open).
    """

    hub: Hub
    workspace: str
    agent_id: str | None
    transport: str
    start: int
    reason: str | None = field(default=None, init=False)
    _items: deque[Item] = field(default_factory=deque, init=False)
    _waiter: asyncio.Future[None] | None = field(default=None, init=False)

    @property
    def closed(self) -> bool:
        return self.reason is not None

    async def get(self, timeout: float) -> list[Item] | None:
        """Wait up to ``timeout`` seconds for live events.

        Returns:
            every event queued, oldest first; ``[]`` when ``timeout`` passed
            first; ``None`` once the hub ended the subscription (it stopped, or
            this subscriber fell too far behind): close the stream.
        """
        if not self._items and self.reason is None:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(timeout, settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.reason is not None:
            return None
        items = list(self._items)
        self._items.clear()
        self.hub._queued -= len(items)
        return items

    def close(self, reason: str) -> None:
        """End the subscription: :meth:`get` returns ``None`` from now on."""
        if self.reason is not None:
            return
        self.reason = reason
        self.hub._queued -= len(self._items)
        self._items.clear()
        if self._waiter is not None:
            settle(self._waiter)

    def _push(self, item: Item) -> bool:
        # On the loop thread, from Hub._fan_out.
        if self.reason is not None:
            return False
        if len(self._items) >= self.hub.queue_limit:
            logger.warning(
                "dropping a slow %s subscriber of %s (%d events behind)",
                self.transport,
                self.agent_id or "admin",
                len(self._items),
            )
            self.close(f"fell more than {self.hub.queue_limit} events behind; resume from the id")
            return False
        self._items.append(item)
        self.hub._queued += 1
        if self._waiter is not None:
            settle(self._waiter)
        return True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.unsubscribe(self)


def settle(future: asyncio.Future[None]) -> None:
    """Wake whoever awaits ``future`` (once: a settled future is left alone)."""
    if not future.done():
        future.set_result(None)
