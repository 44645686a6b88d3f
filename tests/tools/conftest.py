"""Fixtures of the tool tests: a short folder for sockets, a project folder."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A short private folder for sockets (a socket path has at most 107 bytes), used
    as ``XDG_RUNTIME_DIR``."""
    folder = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder named ``shop`` (its name is the sessions' project tag)."""
    folder = tmp_path / "shop"
    folder.mkdir()
    return folder
