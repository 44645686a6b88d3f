"""The real Gemini CLI (npm ``@google/gemini-cli``) reading what ``relaybus install
gemini`` wrote: ``gemini mcp list`` in a temporary home shows relaybus Disabled
until the folder is trusted, and Connected once ``--trust`` has trusted it, with
the user's comments still in the settings file.

The package is installed once into ``~/.cache/relaybus-test/gemini-cli-VERSION``;
skipped when node or npm is missing or the package cannot be installed (offline).
``gemini mcp list`` needs no account and no network.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relaybus.tools.install.files import JsonStyle
from relaybus.tools.install.jsonc import loads, patch
from tests.support.npmtool import npm_tool
from tests.tools.setuputil import Home
from tests.tools.setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

PACKAGE = "@google/gemini-cli"
VERSION = "0.61.0"
#: Seconds one ``gemini mcp list`` may take (it starts ``relaybus mcp`` and connects).
LIST_SECONDS = 120
#: Milliseconds Gemini CLI waits for relaybus to connect (the entry's "timeout").
CONNECT_MS = 60_000


@pytest.fixture(scope="module")
def gemini() -> Path:
    """The ``gemini`` executable, installed into the cache if missing."""
    return npm_tool(PACKAGE, VERSION, name="gemini-cli", binary="gemini", ignore_scripts=True)


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


@pytest.mark.slow
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
