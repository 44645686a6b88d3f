"""The ledger of mail a session's hooks printed themselves (see :mod:`.direct`):
one small JSON file per hook that printed mail, ``KEY.printed-PID-NS.json`` (mode 0600,
in the session's private runtime folder), until that mail is marked read.

Standard library only, like :mod:`.command`: it runs inside a hook's budget.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

#: The suffix of a session's printed file: ``KEY.printed-PID-NS.json``.
PRINTED = ".printed-"


def is_private(folder: Path) -> bool:
    """Whether ``folder`` is this user's and closed to others.

    Raises:
        OSError: it cannot be looked at (e.g. it does not exist).
    """
    info = folder.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return not stat.S_IMODE(info.st_mode) & 0o077


def private_folder(folder: Path) -> Path:
    """``folder``, created 0700, checked to be this user's and closed to others.

    Raises:
        PermissionError: someone else's folder, or one others can enter.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_private(folder):
        raise PermissionError(f"{folder} belongs to another user or is open to others")
    return folder


def printed(folder: Path, key: str) -> tuple[set[int], list[str]]:
    """The ids of mail printed by the session ``key``'s hooks and not yet
    confirmed read, and the names of the files that say so (in ``folder``)."""
    ids: set[int] = set()
    names: list[str] = []
    try:
        if not is_private(folder):
            return ids, names  # records anyone else could have written: none
        listing = os.listdir(folder)
    except OSError:
        return ids, names
    for name in listing:
        if not (name.startswith(key + PRINTED) and name.endswith(".json")):
            continue
        try:
            with open(folder / name, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        found = doc.get("ids") if isinstance(doc, dict) else None
        if isinstance(found, list):
            ids.update(i for i in found if isinstance(i, int) and not isinstance(i, bool))
            names.append(name)
    return ids, names


def record_printed(folder: Path, key: str, ids: Sequence[int]) -> str:
    """Record that ``ids`` were printed to session ``key`` (a new 0600 file
    in the private ``folder``, written whole before it appears); its name.

    Raises:
        OSError: it could not be written.
    """
    name = f"{key}{PRINTED}{os.getpid()}-{time.monotonic_ns()}.json"
    temp = folder / f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"ids": sorted(ids)}, f)
    os.replace(temp, folder / name)
    return name


def forget_printed(folder: Path, key: str, names: Iterable[str]) -> None:
    """Remove the printed files ``names`` of session ``key`` (their mail is
    marked read); names that are not such files are ignored."""
    for name in names:
        if name.startswith(key + PRINTED) and "/" not in name and name.endswith(".json"):
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                pass
