"""Where the embedded relay lives: ``.relay/`` in the repository root, found like git."""

from __future__ import annotations

from pathlib import Path

RELAY_DIRNAME = ".relay"
DB_FILENAME = "relay.db"


def find_relay_dir(start: Path | None = None) -> Path:
    """The relay directory for ``start`` (default: the cwd).

    Walks up from ``start``: the first folder that has a ``.relay/`` wins;
    otherwise the first that has a ``.git`` (the repository root) gets one;
    outside any repository it is ``start/.relay``. ``RELAYBUS_DIR`` (see
    :class:`relaybus.settings.Settings`) overrides this search entirely.

    Returns:
        the ``.relay`` directory path (it may not exist yet).
    """
    here = (start or Path.cwd()).resolve()
    candidates = [here, *here.parents]
    for folder in candidates:
        if (folder / RELAY_DIRNAME).is_dir():
            return folder / RELAY_DIRNAME
    for folder in candidates:
        if (folder / ".git").exists():
            return folder / RELAY_DIRNAME
    return here / RELAY_DIRNAME


def sqlite_url(relay_dir: Path) -> str:
    """The SQLAlchemy URL of ``relay_dir/relay.db``."""
    return f"sqlite:///{relay_dir / DB_FILENAME}"
