"""What ``relaybus install`` did, so that ``relaybus uninstall`` can undo exactly that.

The manifest is ``installs.json`` in the state folder (``$XDG_STATE_HOME/relaybus``,
default ``~/.local/state/relaybus``). Each record is one install (tool, scope,
project) and lists, per file, whether install created the file, the JSON
containers it created (so uninstall removes them again once empty), and the
backups taken before each change. The folders install created are kept apart
from the records: two installs may share one (``.claude/``), and whichever
uninstall empties it removes it.

Backups go to ``backups/<UTC time>/<absolute path of the file>`` in the same
state folder, not next to the file: a project's ``.mcp.json.bak`` would show up
in ``git status``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import ConfigError, read_text, write_text

MANIFEST_NAME = "installs.json"
MANIFEST_VERSION = 1

KeyPath = tuple[str, ...]


@dataclass
class FileRecord:
    """What one install did to one file."""

    path: Path
    created_file: bool = False
    created_keys: list[KeyPath] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "created_file": self.created_file,
            "created_keys": [list(k) for k in self.created_keys],
            "backups": [str(b) for b in self.backups],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileRecord:
        return cls(
            path=Path(data["path"]),
            created_file=bool(data.get("created_file", False)),
            created_keys=[tuple(k) for k in data.get("created_keys", [])],
            backups=[Path(b) for b in data.get("backups", [])],
        )


@dataclass
class InstallRecord:
    """One ``relaybus install TOOL --scope SCOPE`` (``project`` None for user scope)."""

    tool: str
    scope: str
    project: str | None
    files: list[FileRecord] = field(default_factory=list)

    def file(self, path: Path) -> FileRecord | None:
        """The record of ``path``, if this install touched it."""
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "scope": self.scope,
            "project": self.project,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InstallRecord:
        return cls(
            tool=str(data["tool"]),
            scope=str(data["scope"]),
            project=data.get("project"),
            files=[FileRecord.from_json(f) for f in data.get("files", [])],
        )


class Manifest:
    """The install records in ``folder/installs.json``; :meth:`save` writes them."""

    def __init__(
        self,
        folder: Path,
        records: list[InstallRecord] | None = None,
        created_dirs: list[Path] | None = None,
    ) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.records = records or []
        #: Folders install created for config files, removed again once empty.
        self.created_dirs = created_dirs or []

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """The manifest in ``folder`` (empty if there is none yet).

        Raises:
            ConfigError: the file is not a manifest this version can read.
        """
        path = folder / MANIFEST_NAME
        text = read_text(path)
        if text is None or not text.strip():
            return cls(folder)
        try:
            data = json.loads(text)
            records = [InstallRecord.from_json(r) for r in data["installs"]]
            dirs = [Path(d) for d in data.get("created_dirs", [])]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{path} (what relaybus installed) is damaged: move it away and run the command "
                "again (uninstall then removes entries but keeps containers it cannot attribute)",
                path=str(path),
            ) from None
        return cls(folder, records, dirs)

    def find(self, tool: str, scope: str, project: str | None) -> InstallRecord | None:
        """The record of that install, if any."""
        return next(
            (r for r in self.records if (r.tool, r.scope, r.project) == (tool, scope, project)),
            None,
        )

    def records_for(self, tool: str) -> list[InstallRecord]:
        """Every recorded install of ``tool``."""
        return [r for r in self.records if r.tool == tool]

    def backups_of(self, path: Path) -> list[Path]:
        """Every backup of ``path`` that any record lists, in the order taken."""
        found = [b for r in self.records for f in r.files if f.path == path for b in f.backups]
        return list(dict.fromkeys(found))

    def remove(self, record: InstallRecord) -> None:
        """Forget ``record`` (after uninstall)."""
        self.records = [r for r in self.records if r is not record]

    def save(self) -> None:
        """Write the manifest atomically (the folder is created if needed)."""
        data = {
            "version": MANIFEST_VERSION,
            "installs": [r.to_json() for r in self.records],
            "created_dirs": [str(d) for d in self.created_dirs],
        }
        write_text(self.path, json.dumps(data, indent=2) + "\n")

    def add_dirs(self, dirs: list[Path]) -> None:
        """Remember folders install created."""
        self.created_dirs += [d for d in dirs if d not in self.created_dirs]

    def remove_empty_dirs(self, path: Path) -> None:
        """Remove the folders install created above ``path`` (a deleted file)
        that are now empty, innermost first, and forget every one that is gone."""
        folder = Path(os.path.realpath(path.parent))
        above = [d for d in self.created_dirs if d == folder or d in folder.parents]
        for folder in sorted(above, key=lambda d: len(d.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: the user keeps something there, and so do its parents
        self.created_dirs = [d for d in self.created_dirs if d.exists()]

    def backup(self, path: Path, stamp: str) -> Path:
        """Copy ``path`` (its real file, with permissions and times) to
        ``backups/STAMP/<absolute path>``; returns the copy.

        Raises:
            OSError: the copy cannot be written.
        """
        real = Path(os.path.realpath(path))
        target = self.folder / "backups" / stamp / real.relative_to(real.anchor)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, target)
        return target


def new_stamp(folder: Path) -> str:
    """A backup folder name, UTC time to the microsecond (unique per run)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    n = 1
    candidate = stamp
    while (folder / "backups" / candidate).exists():
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate
