"""A stand-in for the Claude Code process, for the session-key test.

Like Claude Code it starts ``relaybus mcp`` as its own child (through the MCP
SDK's stdio client, no shell) and runs hook commands through ``sh -c``, with
no ``RELAYBUS_SESSION``: both must find this process as the session's tool
process and so the same agent. Prints one JSON line: the agent id that
``whoami`` reports and the SessionStart hook's output.

Usage: python fake_claude.py HOOK_INPUT_JSON (the environment names the relay).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

#: Seconds before the stand-in gives up: far above a real run.
HUNG = 60.0


async def main(hook_input: str) -> None:
    env = dict(os.environ)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "relaybus", "mcp"], env=env, cwd=os.getcwd()
    )
    with anyio.fail_after(HUNG), open(os.devnull, "w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            who = await client.call_tool("whoami", {})
            whoami = who.content[0].text  # type: ignore[union-attr]
            command = f"{shlex.quote(sys.executable)} -m relaybus hook session-start"
            hook = await anyio.to_thread.run_sync(
                lambda: subprocess.run(
                    ["sh", "-c", command],
                    input=hook_input,
                    capture_output=True,
                    encoding="utf-8",
                    env=env,
                    timeout=HUNG,
                    check=True,
                )
            )
    print(json.dumps({"whoami": whoami, "hook": hook.stdout}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
