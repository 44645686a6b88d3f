# Generated from aio_pairs.py by scripts/unasync.py: do not edit. Edit aio_pairs.py
# (the async source) and run `python scripts/unasync.py`; CI checks they agree.
"""Pairs from the SDK: :class:`PairsView` (reading pairs: an agent's own on its
handle, every pair of the workspace on a relay) and :class:`PairActions` (an
agent's handle inviting, answering, sending pair messages and hanging up).

>>> pair = alice.pair_invite("bob", "fix the flaky test")
>>> bob.pair_accept(pair.id)
>>> alice.pair_send(pair.id, "I take the parser")
>>> bob.pair_hangup(pair.id)
"""

from __future__ import annotations

from typing import TypeVar

from ..models import Message, Pair, PairStatus
from . import calls
from .view import View

T = TypeVar("T")


class PairsView(View):
    """Reading pairs: on a relay every pair of its workspace, on an agent's handle the
    agent's own."""

    def pairs(self, *, status: PairStatus | str | None = None, limit: int = 100) -> list[Pair]:
        """Pairs, newest first (``status``: only those; ``limit``: at most 1-1000), as
        time has left them (an invite past its expiry reads expired)."""
        return self._run(
            calls.list_pairs(
                workspace=self._workspace, viewer=self._agent, status=status, limit=limit
            )
        )

    def pair(self, pair_id: int) -> Pair:
        """One pair. Raises NotFound (also for a pair the agent is not in)."""
        return self._run(calls.get_pair(pair_id, workspace=self._workspace, viewer=self._agent))


class PairActions(PairsView):
    """An agent's pair sessions, acting as it (fenced by its epoch)."""

    id: str
    epoch: int | None

    def pair_invite(self, target: str, objective: str) -> Pair:
        """Invite agent ``target`` to pair on ``objective``: a pending pair; the invite
        is in ``target``'s inbox. Raises Conflict (``details["pair"]``: the blocking
        pair) when either agent is in a pending or active pair, NotFound for an unknown
        agent, InvalidInput."""
        return self._run(
            calls.pair_invite(
                self.id, target, objective, workspace=self._workspace, epoch=self.epoch
            )
        )

    def pair_accept(self, pair_id: int) -> Pair:
        """Accept an invite (as its invitee): the pair becomes active. Raises Forbidden
        (the inviter), Conflict (not pending, or another pair blocks), NotFound."""
        return self._run(
            calls.pair_accept(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    def pair_reject(self, pair_id: int) -> Pair:
        """Reject an invite (as its invitee). Raises Forbidden, Conflict, NotFound."""
        return self._run(
            calls.pair_reject(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    def pair_hangup(self, pair_id: int) -> Pair:
        """End the pair (either side; a pending invite too). Raises Conflict (over
        already), NotFound."""
        return self._run(
            calls.pair_hangup(pair_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    def pair_send(self, pair_id: int, body: str) -> Message:
        """Send ``body`` to the other side of an active pair, on its thread. Raises
        Conflict (not active), NotFound, InvalidInput, TooLarge."""
        return self._run(
            calls.pair_send(pair_id, self.id, body, workspace=self._workspace, epoch=self.epoch)
        )
