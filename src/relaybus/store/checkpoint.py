"""WAL checkpoints of a SQLite store, off the write path.

In WAL mode a commit appends pages to ``relay.db-wal``; with ``synchronous = NORMAL``
it does not fsync. The fsync, and copying the pages back into the database file, is
the checkpoint, which SQLite by default runs inside the commit that takes the WAL past
``wal_autocheckpoint`` pages (1,000): that send then pays for every page of the sends
before it. A broadcast writes hundreds of pages, so one send in a few paid a
checkpoint (the tail of the broadcast benchmark, and a third of its median).

:class:`Checkpointer` moves that work to a thread of its own with its own connection:
after each commit :meth:`Checkpointer.committed` looks at the WAL's size (one
``stat``) and, past :data:`BACKGROUND_PAGES`, wakes the thread, which runs a
``PASSIVE`` checkpoint (it never blocks writers or readers; SQLite restarts the WAL
from its start at the next write once every frame is copied). The write connection
keeps SQLite's own automatic checkpoint, at :data:`INLINE_PAGES`, as a bound: a
process that exits right after its writes (a CLI command) never runs its thread,
and the WAL still cannot grow without limit.

A burst of writes faster than the checkpoints (broadcasts to a thousand agents, each
hundreds of pages) grows the WAL file far past the threshold, and SQLite reuses the
file from its start without shrinking it: 130 MB after 100 such broadcasts here, and
every later commit then found the file past the threshold and woke the thread for
nothing. Both connections set ``journal_size_limit`` to the threshold, so the write
that restarts the WAL truncates the file back to it (SQLite's test ``wal7.test``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

#: WAL pages after which a commit wakes the checkpoint thread (SQLite's own default
#: ``wal_autocheckpoint``).
BACKGROUND_PAGES = 1000
#: The write connection's ``wal_autocheckpoint``: SQLite checkpoints inside a commit
#: only past this many pages, when the thread has not kept up (or never ran).
INLINE_PAGES = 8000
#: How long the thread's checkpoint waits for SQLite's locks (ms).
BUSY_TIMEOUT_MS = 5000


class Checkpointer:
    """A daemon thread that checkpoints the WAL of the SQLite file ``path``.

    Args:
        path: the database file; its WAL is ``path`` + ``-wal``.
        pages: checkpoint once the WAL holds more than this many pages.
    """

    def __init__(self, path: Path, pages: int = BACKGROUND_PAGES) -> None:
        self.path = path
        self.wal = f"{path}-wal"
        self.pages = pages
        #: The WAL size (bytes) past which a commit wakes the thread (see :meth:`attach`).
        self.threshold = pages * 4096
        #: Checkpoints run so far (read by tests and benchmarks).
        self.runs = 0
        #: ``(busy, log, checkpointed)`` of the last checkpoint, as SQLite reports it.
        self.last: tuple[int, int, int] | None = None
        self._due = threading.Event()
        self._done = threading.Condition()
        self._stopping = False
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None

    def attach(self, dbapi: sqlite3.Connection) -> None:
        """Set up the write connection ``dbapi`` (its ``connect`` event): SQLite's own
        checkpoint only past :data:`INLINE_PAGES`, the threshold in its page size, and
        the WAL file cut back to the threshold when the WAL restarts."""
        (page_size,) = dbapi.execute("PRAGMA page_size").fetchone()
        self.threshold = self.pages * int(page_size)
        dbapi.execute(f"PRAGMA wal_autocheckpoint = {INLINE_PAGES}")
        dbapi.execute(f"PRAGMA journal_size_limit = {self.threshold}")

    def committed(self) -> None:
        """After a commit: wake the thread if the WAL has grown past the threshold."""
        try:
            size = os.stat(self.wal).st_size
        except OSError:
            return  # no WAL (yet): nothing to copy
        if size <= self.threshold:
            return
        # The WAL file keeps its size after a restart; a checkpoint with nothing to
        # copy returns at once, so a wake-up too many costs little.
        if self._thread is None:
            with self._starting:  # writers of several threads may get here at once
                if self._thread is None and not self._stopping:
                    thread = threading.Thread(
                        target=self._run, name="relaybus-checkpoint", daemon=True
                    )
                    thread.start()
                    self._thread = thread
        self._due.set()

    @property
    def running(self) -> bool:
        """Whether the thread is running (it starts at the first checkpoint due)."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, runs: int, timeout: float) -> bool:
        """Block until at least ``runs`` checkpoints have run, or ``timeout`` seconds
        pass; returns whether they have."""
        with self._done:
            return self._done.wait_for(lambda: self.runs >= runs, timeout)

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any)."""
        with self._starting:
            self._stopping = True
            thread, self._thread = self._thread, None
        self._due.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            logger.warning("cannot open %s to checkpoint it", self.path, exc_info=True)
            return
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA journal_size_limit = {self.threshold}")
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    # Busy past the timeout, or the file went away: the next commit
                    # wakes the thread again, and SQLite's inline checkpoint is the bound.
                    logger.debug("background checkpoint of %s failed", self.path, exc_info=True)
                    row = None
                with self._done:
                    self.runs += 1
                    self.last = tuple(row) if row is not None else None
                    self._done.notify_all()
        finally:
            conn.close()
