"""Command-line tools from the npm registry for the tests that drive them
(the MCP Inspector, Gemini CLI): each installed once, pinned, into
``~/.cache/relaybus-test/NAME-VERSION`` with npm's own cache beside it.

A test that needs one is skipped when node or npm is missing or the package
cannot be installed (offline).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

#: Seconds npm may take to install a package on a cold cache.
INSTALL_SECONDS = 600


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/relaybus-test`` (or ``~/.cache/relaybus-test``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "relaybus-test"


def npm_tool(
    package: str, version: str, *, name: str, binary: str, ignore_scripts: bool = False
) -> Path:
    """The executable ``binary`` of ``package@version``, installed into the cache
    (folder ``NAME-VERSION``) if missing. Concurrent runs (pytest-xdist workers, two test
    runs) take turns on a lock file beside it: one installs, the others wait and use its
    install. A run that dies mid-install leaves only a partial folder, never a broken one.

    Raises:
        pytest.skip.Exception: node or npm is missing, or npm failed.
    """
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip(f"{package} needs node and npm, and they are not on PATH")
    target = cache_dir() / f"{name}-{version}"
    executable = target / "node_modules" / ".bin" / binary
    if executable.exists():
        return executable
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f"{target.name}.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if executable.exists():  # another run installed it while we waited
            return executable
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        args = [npm, "install", "--prefix", str(partial), "--no-audit", "--no-fund"]
        args += ["--loglevel=error"] + (["--ignore-scripts"] if ignore_scripts else [])
        installed = subprocess.run(
            args + [f"{package}@{version}"],
            capture_output=True,
            encoding="utf-8",
            env={**os.environ, "npm_config_cache": str(cache_dir() / "npm")},
            timeout=INSTALL_SECONDS,
            check=False,
        )
        if installed.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            reason = installed.stderr.strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"could not install {package}@{version} with npm: {reason[0]}")
        shutil.rmtree(target, ignore_errors=True)  # a folder without the executable
        partial.rename(target)
    return executable
