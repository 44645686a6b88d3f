"""Warnings of relaybus's loggers shown to the person at the terminal.

A command line or a terminal runner has no logging set up, and a warning there
(a store made private on open, a relay that went away) is for the user: it
should appear as one line in the program's own voice, not as a log record.

This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator


class _Notices(logging.Handler):
    """Records of level WARNING and up as one line each, to ``notice``."""

    def __init__(self, notice: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._notice = notice

    def emit(self, record: logging.LogRecord) -> None:
        self._notice(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def notices(logger: logging.Logger, notice: Callable[[str], None]) -> Iterator[None]:
    """While open, records of level WARNING and up of ``logger`` (and its child
    loggers) go to ``notice`` as one line of text each (line breaks folded into
    spaces) instead of through logging: ``logger`` stops propagating them to the
    root logger until the block ends."""
    handler = _Notices(notice)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
