"""The environment of a child process: the parent's, without the developer's
``RELAYBUS_*`` settings but with the suite's ``RELAYBUS_DAEMON=0`` (tests/conftest.py),
so that a ``relaybus`` command opens the store itself and leaves no warm relay behind."""

from __future__ import annotations

import os


def clean_environ(*prefixes: str) -> dict[str, str]:
    """``os.environ`` without ``RELAYBUS_*`` (and the other ``prefixes``), except
    ``RELAYBUS_DAEMON``."""
    drop = ("RELAYBUS_", *prefixes)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop) or k == "RELAYBUS_DAEMON"}
