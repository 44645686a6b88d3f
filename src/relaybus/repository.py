"""The repository a folder belongs to, found the way git finds it.

Standard library only, and nothing else: the settings (the store's location) and the
session identity (a session's project, on every hook call) both use it, and neither
may import the other's dependencies for it.
"""

from __future__ import annotations

from pathlib import Path


def repository_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``.git`` (a folder, or the
    file of a worktree or submodule), or ``None`` outside any repository."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None
