"""How an embedded backend runs a blocking service call: :class:`AsyncCallRunner` in a
worker thread (asyncio), :class:`CallRunner` in the caller's own thread (sync).

The one hand-written pair of the client: everything else of the sync side is
generated from the async side by ``scripts/unasync.py``, which renames
``AsyncCallRunner`` to ``CallRunner`` (httpcore keeps its sync/async primitives the same
way, in ``_synchronization.py``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Longest single wait (seconds) of an asyncio embedded relay's worker thread: a
#: cancelled wait frees its thread within this.
EMBEDDED_WAIT_STEP = 1.0
#: Seconds :meth:`AsyncCallRunner.finish` waits for calls still running in worker threads
#: (a cancelled wait ends within :data:`EMBEDDED_WAIT_STEP`) before it closes the store.
EMBEDDED_CLOSE_WAIT = EMBEDDED_WAIT_STEP + 10.0


class AsyncCallRunner:
    """Blocking calls in worker threads (``asyncio.to_thread``).

    A cancelled call goes on in its thread until it returns, so waits are taken
    in steps of :attr:`wait_step` seconds and :meth:`finish` lets running calls
    end before it closes anything.
    """

    #: The longest single wait (seconds); longer waits take several.
    wait_step = EMBEDDED_WAIT_STEP

    def __init__(self) -> None:
        self._running = 0  # calls in worker threads, cancelled ones included
        self._idle = threading.Condition()

    async def run(self, function: Callable[[], T]) -> T:
        """``function()`` in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self._tracked, function)

    async def finish(self, close: Callable[[], None]) -> None:
        """Wait (at most :data:`EMBEDDED_CLOSE_WAIT` s) for the calls still running,
        then ``close()``, in a worker thread."""
        import asyncio

        await asyncio.to_thread(self._close_when_idle, close)

    def _tracked(self, function: Callable[[], T]) -> T:
        with self._idle:
            self._running += 1
        try:
            return function()
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _close_when_idle(self, close: Callable[[], None]) -> None:
        # A cancelled call goes on in its thread (a wait until its step ends, then one
        # last read): closing the store under it would let that read open a connection
        # that nothing closes. So let running calls finish first (bounded).
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, EMBEDDED_CLOSE_WAIT)
        close()


class CallRunner:
    """Blocking calls in the caller's thread: a wait is one call, however long."""

    wait_step = math.inf

    def run(self, function: Callable[[], T]) -> T:
        """``function()``."""
        return function()

    def finish(self, close: Callable[[], None]) -> None:
        """``close()``."""
        close()
