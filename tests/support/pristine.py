"""A relay set up once and shared by the tests that must leave it exactly as they found it.

The bad-input tests each set up the same small world (a few agents, a message, a task), make
one refused call and check that no row changed. Setting the world up again for every one of
hundreds of tests (a new database, a new server) costs most of their time. :class:`Pristine`
sets it up once per key (a dialect, say) and hands it to each test only inside
:meth:`Pristine.kept`, which compares every row with the snapshot taken right after the setup
before the test and after it. A test that changed something fails there, and the world is
set up anew for the next test: every test starts from the same rows, whatever ran before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Snapshot = dict[str, list[tuple[Any, ...]]]


class Pristine(Generic[T]):
    """Worlds made by ``make(key)`` (a context manager: entered once, exited when the world is
    discarded or :meth:`close` runs), compared with ``snapshot(world)``; ``reset(world)``,
    if given, runs before each test (e.g. to put a test clock back)."""

    def __init__(
        self,
        make: Callable[[str], contextlib.AbstractContextManager[T]],
        snapshot: Callable[[T], Snapshot],
        reset: Callable[[T], None] | None = None,
    ) -> None:
        self._make = make
        self._snapshot = snapshot
        self._reset = reset
        self._worlds: dict[str, tuple[T, Snapshot, contextlib.ExitStack]] = {}

    @contextlib.contextmanager
    def kept(self, key: str) -> Iterator[T]:
        """The world of ``key`` for the block, set up if there is none.

        Raises:
            AssertionError: the block left a row different from the setup's (the world is
                discarded first, so the next test gets a new one).
        """
        world, pristine = self._get(key)
        assert self._snapshot(world) == pristine  # a test that changed it discarded it
        yield world
        after = self._snapshot(world)
        if after != pristine:
            self.discard(key)
        assert after == pristine, "the test changed the shared relay"

    def _get(self, key: str) -> tuple[T, Snapshot]:
        if key not in self._worlds:
            stack = contextlib.ExitStack()
            try:
                world = stack.enter_context(self._make(key))
                if self._reset is not None:
                    self._reset(world)
                self._worlds[key] = (world, self._snapshot(world), stack)
            except BaseException:
                stack.close()
                raise
        world, pristine, _ = self._worlds[key]
        if self._reset is not None:
            self._reset(world)
        return world, pristine

    def discard(self, key: str) -> None:
        """Tear the world of ``key`` down; the next test sets it up anew."""
        if key in self._worlds:
            self._worlds.pop(key)[2].close()

    def close(self) -> None:
        """Tear every world down."""
        for key in list(self._worlds):
            self.discard(key)
