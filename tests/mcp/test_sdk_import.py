"""``tests/mcp`` is the package ``tests.mcp``: ``import mcp`` in the tests is the MCP SDK."""

from __future__ import annotations

import sys
from pathlib import Path

import mcp

import tests.mcp


def test_import_mcp_in_the_tests_gets_the_sdk_not_the_test_package() -> None:
    sdk = Path(mcp.__file__ or "").resolve()
    assert "site-packages" in sdk.parts
    assert Path(tests.mcp.__file__ or "").resolve().parent == Path(__file__).resolve().parent
    assert sys.modules["mcp"] is mcp
