""":class:`AsyncView`, what every SDK view needs of the object it is mixed into: a way
to run a call, the workspace, and whose view it is. The relay (the workspace operator)
and an agent's handle provide them; the views (tasks, pairs, messages) build on them.
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeVar

from .transport import Call

T = TypeVar("T")


class AsyncView(ABC):
    """The base of the SDK's views: :meth:`_run`, :attr:`_workspace`, :attr:`_agent`."""

    @abstractmethod
    async def _run(self, call: Call[T]) -> T:
        """``call`` run by the relay's backend."""

    @property
    @abstractmethod
    def _workspace(self) -> str:
        """The workspace the calls work in."""

    @property
    @abstractmethod
    def _agent(self) -> str | None:
        """The agent whose view this is and who acts (``None``: the workspace operator,
        who sees every row of the workspace)."""
