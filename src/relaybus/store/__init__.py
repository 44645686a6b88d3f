"""Storage: the schema, migrations and the open :class:`Store` (SQLite or PostgreSQL)."""

from .engine import Store, open_store
from .locate import find_relay_dir, sqlite_url

__all__ = ["Store", "open_store", "find_relay_dir", "sqlite_url"]
