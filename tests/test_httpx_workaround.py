"""The httpx workaround (:mod:`relaybus._httpx`) still does what it is there for.

Each check imports httpx in a fresh interpreter. The workaround skips httpx's command line
only while ``import httpx`` imports it under the name the workaround blocks: if an httpx
release renames ``httpx._main`` or stops importing it, the second test fails and the
workaround should be updated or dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from relaybus._httpx import CLI_MODULE

#: Seconds a fresh interpreter may take to import httpx before the test calls it hung.
HUNG = 60.0

REPORT = f"""
import json, sys
import httpx
cli = sys.modules.get({CLI_MODULE!r}, "absent")
print(json.dumps({{
    "cli": "absent" if cli == "absent" else "blocked" if cli is None else "module",
    "main_from_cli": cli not in ("absent", None) and httpx.main is getattr(cli, "main", None),
    "rich": "rich" in sys.modules,
    "client": hasattr(httpx, "Client"),
}}))
"""


def fresh_import(prelude: str) -> dict[str, Any]:
    """Run ``prelude`` then :data:`REPORT` in a new interpreter; returns its report."""
    done = subprocess.run(
        [sys.executable, "-c", prelude + REPORT],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HUNG,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_with_the_workaround_httpx_imports_without_its_command_line() -> None:
    report = fresh_import("from relaybus._httpx import skip_httpx_cli\nskip_httpx_cli()\n")
    assert report == {"cli": "blocked", "main_from_cli": False, "rich": False, "client": True}


def test_without_it_httpx_imports_its_command_line_under_the_name_the_workaround_blocks() -> None:
    report = fresh_import("")
    assert report == {"cli": "module", "main_from_cli": True, "rich": True, "client": True}


def test_the_workaround_leaves_an_httpx_already_imported_alone() -> None:
    report = fresh_import(
        "import httpx\nfrom relaybus._httpx import skip_httpx_cli\nskip_httpx_cli()\n"
    )
    assert report["cli"] == "module"


def test_the_cli_and_the_demo_agent_share_the_one_helper() -> None:
    from relaybus._httpx import skip_httpx_cli
    from relaybus.cli import app
    from relaybus.workflows import demo_agent

    assert vars(app)["skip_httpx_cli"] is skip_httpx_cli
    assert vars(demo_agent)["skip_httpx_cli"] is skip_httpx_cli
