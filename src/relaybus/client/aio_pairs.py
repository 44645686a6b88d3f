"""Pairs from the SDK: :class:`AsyncPairsView` (reading pairs: an agent's own on its
handle, every pair of the workspace on a relay) and :class:`AsyncPairActions` (an
agent's handle inviting, answering, sending pair messages and hanging up).

>>> pair = await alice.pair_invite("bob", "fix the flaky test")
>>> await bob.pair_accept(pair.id)
>>> await alice.pair_send(pair.id, "I take the parser")
>>> await bob.pair_hangup(pair.id)
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

from typing import TypeVar

from ..models import Message, Pair, PairStatus
from . import calls
from .aio_view import AsyncView

T = TypeVar("T")


class AsyncPairsView(AsyncView):
    """Reading pairs: on a relay every pair of its workspace, on an agent's handle the
    agent's own."""

    async def pairs(
        self, *, status: PairStatus | str | None = None, limit: int = 100
    ) -> list[Pair]:
        """Pairs, newest first (``status``: only those; ``limit``: at most 1-1000), as
        time has left them (an invite past its expiry reads expired)."""
        return await self._run(
            calls.list_pairs(
                workspace=self._workspace, viewer=self._agent, status=status, limit=limit
            )
        )

    async def pair(self, pair_id: int) -> Pair:
        """One pair. Raises NotFound (also for a pair the agent is not in)."""
        return await self._run(
            calls.get_pair(pair_id, workspace=self._workspace, viewer=self._agent)
        )


class AsyncPairActions(AsyncPairsView):
    """An agent's pair sessions, acting as it (fenced by its epoch)."""

    id: str
    epoch: int | None

    async def pair_invite(self, target: str, objective: str) -> Pair:
        """Invite agent ``target`` to pair on ``objective``: a pending pair; the invite
        is in ``target``'s inbox. Raises Conflict (``details["pair"]``: the blocking
        pair) when either agent is in a pending or active pair, NotFound for an unknown
        agent, InvalidInput."""
        return await self._run(
            calls.pair_invite(
                self.id, target, objective, workspace=self._workspace, epoch=self.epoch
            )
        )

    async def pair_accept(self, pair_id: int) -> Pair:
        """Accept an invite (as its invitee): the pair becomes active. Raises Forbidden
        (the inviter), Conflict (not pending, or another pair blocks), NotFound."""
        return await self._run(
            calls.pair_accept(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    async def pair_reject(self, pair_id: int) -> Pair:
        """Reject an invite (as its invitee). Raises Forbidden, Conflict, NotFound."""
        return await self._run(
            calls.pair_reject(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    async def pair_hangup(self, pair_id: int) -> Pair:
        """End the pair (either side; a pending invite too). Raises Conflict (over
        already), NotFound."""
        return await self._run(
            calls.pair_hangup(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    async def pair_send(self, pair_id: int, body: str) -> Message:
        """Send ``body`` to the other side of an active pair, on its thread. Raises
        Conflict (not active), NotFound, InvalidInput, TooLarge."""
        return await self._run(
            calls.pair_send(pair_id, self.id, body, workspace=self._workspace, epoch=self.epoch)
        )
