"""Relay calls off a terminal loop's thread, in order.

A terminal loop must never wait on the relay (a slow server would freeze the
user's terminal), so delivery receipts go through a :class:`Worker`: one
daemon thread that runs submitted calls in the order given and retries the ones
that failed for a passing reason (relay unreachable, rate limited) a few times.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ..errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RelayError,
    TooLarge,
    Unauthorized,
)

logger = logging.getLogger("relaybus.runtime")

#: Errors that another try would not change.
PERMANENT = (Conflict, Forbidden, InvalidInput, NotFound, TooLarge, Unauthorized)
#: Pauses before the second, third and fourth try of a failed call, seconds.
RETRY_DELAYS = (0.5, 2.0, 5.0)


class Worker:
    """Runs relay calls one at a time on a background thread, in submission order.

    Args:
        name: the thread's name.
        retry_delays: pauses before each retry of a call that raised a passing
            :class:`~relaybus.errors.RelayError` (seconds); after the last, the
            call is logged and dropped.

    A call raising anything else is logged (``logger.exception``) and dropped;
    the thread carries on. Thread-safe.
    """

    def __init__(
        self, name: str = "relaybus-runtime", *, retry_delays: tuple[float, ...] = RETRY_DELAYS
    ) -> None:
        self.retry_delays = retry_delays
        self._calls: deque[tuple[Callable[[], object], str]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], object], what: str) -> None:
        """Queue ``call``; ``what`` names it in log lines (e.g. ``"mark #12 read"``).
        Calls submitted after :meth:`close` are dropped."""
        with self._cond:
            if self._closing:
                logger.warning("dropped %s: the runtime is closing", what)
                return
            self._calls.append((call, what))
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Block until every call submitted so far ran (or gave up), at most
        ``timeout`` seconds. True if the queue is empty."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._calls and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Run what is queued, then stop the thread; at most ``timeout`` seconds
        (a call still running then is abandoned: the thread is a daemon).
        True if everything ran."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()  # cut retry pauses short
            return False
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._calls or self._closing)
                if not self._calls:
                    self._cond.notify_all()
                    return  # closing, and nothing left
                call, what = self._calls.popleft()
                self._busy = True
            try:
                self._attempt(call, what)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _attempt(self, call: Callable[[], object], what: str) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            try:
                call()
                return
            except PERMANENT as exc:
                logger.warning("%s failed: %s", what, exc)
                return
            except RelayError as exc:
                if attempt == len(self.retry_delays):
                    logger.warning("%s failed, giving up: %s", what, exc)
                    return
                logger.info("%s failed, will retry: %s", what, exc)
                if self._abandon.wait(self.retry_delays[attempt]):
                    return
            except Exception:  # the thread's top-level boundary: keep serving
                logger.exception("%s failed", what)
                return
