"""Bad tool arguments reach the model as one plain sentence per argument: what
the argument takes, never pydantic's report (error codes, input values, links)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.mcp.conftest import call, fail, run, stdio_session

#: Through the bridge to the warm relay: the tools' argument checks are the same code in-process.
pytestmark = pytest.mark.usefixtures("daemon")

#: (tool, arguments, the whole error text the model reads).
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("send", {"to": "bob"}, "`body` is required: the message text"),
    (
        "send",
        {"body": "hi"},
        "Error executing tool send: `to` is required: an agent id, tag:NAME, cap:NAME, "
        "label:TEXT or broadcast (or give reply_to to answer a message)",
    ),
    (
        "send",
        {"to": 5, "body": "hi"},
        "`to` must be an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast",
    ),
    (
        "send",
        {"to": "bob", "body": "hi", "reply_to": "first"},
        "`reply_to` must be the id of a message (a whole number)",
    ),
    (
        "send",
        {"to": "bob", "body": "hi", "claimable": "maybe"},
        "`claimable` must be true or false",
    ),
    ("inbox", {"limit": 0}, "`limit` must be a whole number from 1 to 100"),
    ("inbox", {"limit": "many"}, "`limit` must be a whole number from 1 to 100"),
    ("wait_for_message", {"timeout": 301}, "`timeout` must be a whole number from 1 to 300"),
    (
        "task",
        {"action": "steal"},
        "`action` must be one of list, claim, progress, done, failed, release, "
        "pair_invite, pair_accept, pair_reject, pair_send, pair_hangup or pair_status",
    ),
    (
        "task",
        {"action": "progress", "task_id": 1, "progress": 101},
        "`progress` must be a whole number from 0 to 100",
    ),
    ("whoami", {"status": "asleep"}, "`status` must be one of online, busy or idle"),
    ("whoami", {"tags": [1, 2]}, "`tags` must be a list of strings"),
    (
        "whoami",
        {"tags": "x", "status": "asleep"},
        "`tags` must be a list of strings; `status` must be one of online, busy or idle",
    ),
]


def test_argument_errors_name_the_argument_and_what_it_takes(tmp_path: Path) -> None:
    seen: list[str] = []

    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as alice:
            for tool, arguments, _ in CASES:
                seen.append(await fail(alice, tool, **arguments))
            assert "You are alice" in await call(alice, "whoami")  # still serving

    run(scenario)
    assert seen == [expected for _, _, expected in CASES]
    assert not any("pydantic" in text or "http" in text or "\n" in text for text in seen)
