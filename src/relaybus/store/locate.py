"""Where the embedded relay lives: ``.relay/`` in the repository root, found like git."""

from __future__ import annotations

from pathlib import Path

RELAY_DIRNAME = ".relay"
DB_FILENAME = "relay.db"


def repository_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``.git`` (a folder, or the
    file of a worktree or submodule), or ``None`` outside any repository."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def find_relay_dir(start: Path | None = None) -> Path:
    """The relay directory for ``start`` (default: the cwd), found the way git finds
    its repository, and never above it.

    Inside a repository: the nearest ``.relay/`` between ``start`` and the
    repository root (the nearest ``.git``, folder or file), else the root's
    ``.relay``. Outside any repository: ``start/.relay`` only; a ``.relay/``
    further up is never used, so a stray one (say ``/.relay``) cannot take over
    the folders below it. ``RELAYBUS_DIR`` (see :class:`relaybus.settings.Settings`)
    overrides this search entirely.

    Returns:
        the ``.relay`` directory path (it may not exist yet).
    """
    here = (start or Path.cwd()).resolve()
    root = repository_root(here)
    if root is None:
        return here / RELAY_DIRNAME
    for folder in (here, *here.parents):
        if (folder / RELAY_DIRNAME).is_dir():
            return folder / RELAY_DIRNAME
        if folder == root:
            break
    return root / RELAY_DIRNAME


def sqlite_url(relay_dir: Path) -> str:
    """The SQLAlchemy URL of ``relay_dir/relay.db``."""
    return f"sqlite:///{relay_dir / DB_FILENAME}"
