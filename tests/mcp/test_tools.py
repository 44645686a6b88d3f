"""What an agent sees on connecting: the tool list (and what it costs) and the instructions."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybus.mcp.server import instructions
from tests.mcp.conftest import run, stdio_session

#: Each test twice: through the bridge to the warm relay, and in-process.
pytestmark = [pytest.mark.usefixtures("daemon"), pytest.mark.in_process_too]

TOOLS = ["send", "inbox", "wait_for_message", "agents", "task", "whoami"]
#: The issue's budget for the whole tools/list result: about 2,500 tokens.
BUDGET = 10_000


def test_tools_list_is_the_small_tool_set_under_its_budget(tmp_path: Path) -> None:
    sizes: dict[str, int] = {}

    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as client:
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == TOOLS
            assert all(tool.output_schema is None for tool in listed.tools)  # plain text
            assert all(len(tool.description or "") <= 200 for tool in listed.tools)
            wire = listed.model_dump_json(by_alias=True, exclude_none=True)
            sizes["compact"] = len(wire)
            sizes["indented"] = len(
                listed.model_dump_json(by_alias=True, exclude_none=True, indent=2)
            )

    run(scenario)
    print(f"tools/list: {sizes['compact']} characters ({sizes['indented']} indented)")
    assert sizes["compact"] < sizes["indented"] < BUDGET


def test_instructions_give_the_agent_its_id_how_to_reply_and_the_etiquette(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with stdio_session(tmp_path, "a", RELAYBUS_AGENT="alice") as client:
            assert client.instructions == instructions("alice")

    run(scenario)
    text = instructions("alice")
    assert text.startswith("You are agent alice on relaybus")
    assert "send(reply_to=<message id>, body=...)" in text
    assert "tag:NAME, cap:NAME, label:TEXT or broadcast" in text
    assert "Never reply to a pure acknowledgement" in text and "no ack loops" in text
    assert len(text) < 1000
    assert "whoami gives your id" in instructions(None)
