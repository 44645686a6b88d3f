"""The real Gemini CLI (npm ``@google/gemini-cli``) reading what ``relaybus install
gemini`` wrote: ``gemini mcp list`` in a temporary home shows relaybus Disabled
until the folder is trusted, and Connected once ``--trust`` has trusted it, with
the user's comments still in the settings file.

The package is installed once into ``~/.cache/relaybus-test/gemini-cli-VERSION``;
skipped when node or npm is missing or the package cannot be installed (offline).
``gemini mcp list`` needs no account and no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from setuputil import Home
from setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

from relaybus.integrations.install.files import JsonStyle
from relaybus.integrations.install.jsonc import loads, patch

PACKAGE = "@google/gemini-cli"
VERSION = "0.61.0"
#: Seconds npm may take to install the package on a cold cache.
INSTALL_SECONDS = 600
#: Seconds one ``gemini mcp list`` may take (it starts ``relaybus mcp`` and connects).
LIST_SECONDS = 120
#: Milliseconds Gemini CLI waits for relaybus to connect (the entry's "timeout").
CONNECT_MS = 60_000


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "relaybus-test"


@pytest.fixture(scope="module")
def gemini() -> Path:
    """The ``gemini`` executable, installed into the cache if missing."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("Gemini CLI needs node and npm, and they are not on PATH")
    target = cache_dir() / f"gemini-cli-{VERSION}"
    binary = target / "node_modules" / ".bin" / "gemini"
    if binary.exists():
        return binary
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    installed = subprocess.run(
        [npm, "install", "--prefix", str(partial), "--no-audit", "--no-fund", "--loglevel=error"]
        + ["--ignore-scripts", f"{PACKAGE}@{VERSION}"],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "npm_config_cache": str(cache_dir() / "npm")},
        timeout=INSTALL_SECONDS,
        check=False,
    )
    if installed.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        reason = installed.stderr.strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"could not install {PACKAGE}@{VERSION} with npm: {reason[0]}")
    if not binary.exists():  # another run installed it meanwhile; keep theirs
        partial.rename(target)
    else:
        shutil.rmtree(partial, ignore_errors=True)
    return binary


def mcp_list(gemini: Path, home: Home) -> str:
    """``gemini mcp list`` in the project, as the temporary home's user."""
    env = {
        **home.env,
        "RELAYBUS_DIR": str(home.project / ".relay"),
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        [str(gemini), "mcp", "list"],
        cwd=home.project,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=LIST_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_gemini_cli_lists_relaybus_disabled_until_trusted_then_connected(
    gemini: Path, home: Home
) -> None:
    settings = "home/src/app/.gemini/settings.json"
    home.write(settings, '{\n  // mine\n  "theme": "GitHub"\n}\n')
    installed = home("install gemini")
    # `gemini mcp list` gives a server 5 s to connect unless its entry says
    # otherwise: a loaded test machine can take longer to start `relaybus mcp`.
    text = home.read(settings)
    data = loads(text, comments=True)
    data["mcpServers"]["relaybus"]["timeout"] = CONNECT_MS
    home.write(settings, patch(text, data, JsonStyle.detect(text), comments=True))
    untrusted = mcp_list(gemini, home)
    trusted_install = home("install gemini --trust")
    trusted = mcp_list(gemini, home)

    assert installed.code == 0, installed
    assert "not trusted yet" in installed.out
    assert "disabled because this folder is untrusted" in untrusted
    assert "relaybus:" in untrusted and "(stdio) - Disabled" in untrusted
    assert trusted_install.code == 0, trusted_install
    assert "relaybus:" in trusted and "(stdio) - Connected" in trusted, trusted
    assert "// mine" in home.read(settings)
    assert loads(home.read(settings), comments=True)["mcpServers"]["relaybus"]["timeout"] == (
        CONNECT_MS  # the user's key survived the second install
    )
