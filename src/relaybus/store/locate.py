"""Where the embedded relay lives: ``.relay/`` in the repository root, found like git.

The search itself (:func:`find_relay_dir`) lives in :mod:`relaybus.settings`, the
bottom layer, since the settings read the relay folder's ``config.toml``.
"""

from __future__ import annotations

from pathlib import Path

from ..repository import repository_root
from ..settings import RELAY_DIRNAME, find_relay_dir

DB_FILENAME = "relay.db"

__all__ = ["DB_FILENAME", "RELAY_DIRNAME", "find_relay_dir", "repository_root", "sqlite_url"]


def sqlite_url(relay_dir: Path) -> str:
    """The SQLAlchemy URL of ``relay_dir/relay.db``."""
    return f"sqlite:///{relay_dir / DB_FILENAME}"
