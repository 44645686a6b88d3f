"""Waiting, bounded, for something a test cannot be told about: a detached process's
files, a counter another thread updates after the event the test saw.

Where the store is what changes, ``Store.wait_for`` is better: it wakes on commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds between two looks.
EVERY = 0.02


def until(check: Callable[[], T], timeout: float, every: float = EVERY) -> T:
    """Call ``check`` until it returns something true or ``timeout`` seconds pass;
    returns its last result (false when the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(every)
