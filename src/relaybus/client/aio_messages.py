"""Listing messages from the SDK: :class:`AsyncMessagesView`, on a relay every message
of its workspace, on an agent's handle those the agent sent or received (its
``messages()`` is the live stream of what arrives; this is the listing).

>>> page = await relay.list_messages(channel="deploys", q="failed", limit=20)
>>> older = await relay.list_messages(channel="deploys", before=page[-1].id)
>>> receipts = await relay.receipts([m.id for m in page])
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ..models import Delivery, Message
from . import calls
from .aio_view import AsyncView

T = TypeVar("T")


class AsyncMessagesView(AsyncView):
    """Messages as one party may see them: the workspace operator (every message) or
    one agent (those it sent or has a delivery of: the visibility rule)."""

    async def list_messages(
        self,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        participant: str | None = None,
        channel: str | None = None,
        thread: int | None = None,
        to: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages, newest first, each with its recipients; every filter given must
        hold: ``sender``, ``recipient`` (delivered to), ``participant`` (either),
        ``channel``, ``thread`` (root id), ``to`` (exactly this target expression),
        ``tag`` (sent to ``tag:TAG``), ``q`` (text in subject or body, any case).
        ``before``: only older ids (the next page: the last id of this one); ``limit``:
        1-1000. Raises InvalidInput for a malformed filter."""
        return await self._run(
            calls.list_messages(
                workspace=self._workspace,
                viewer=self._agent,
                sender=sender,
                recipient=recipient,
                participant=participant,
                channel=channel,
                thread=thread,
                to=to,
                tag=tag,
                q=q,
                before=before,
                limit=limit,
            )
        )

    async def receipts(self, ids: Sequence[int]) -> list[Delivery]:
        """Every recipient's receipt of each message among ``ids`` (at most 1000) this
        view may see, by message id then agent id; others have none."""
        return await self._run(
            calls.receipts(list(ids), workspace=self._workspace, viewer=self._agent)
        )
