"""A stand-in for the Claude Code process, for the session-key tests.

Like Claude Code it starts ``relaybus mcp`` as its own child (through the MCP
SDK's stdio client, no shell) and runs hook commands through ``sh -c``, with
no ``RELAYBUS_SESSION``: both must find this process as the session's tool
process and so the same agent. Prints one JSON line: the agent id that
``whoami`` reports and the SessionStart hook's output.

With ``--hooks-only`` it starts no MCP server: it runs the SessionStart hook,
prints the hook's output line, and stays alive until its stdin closes (the
session), so a test can look at what the hook left behind meanwhile.

Usage: python fake_claude.py [--hooks-only] HOOK_INPUT_JSON (the environment
names the relay).
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
HOOK = f"{shlex.quote(sys.executable)} -m relaybus hook session-start"


def run_hook(hook_input: str, env: dict[str, str]) -> str:
    """Run the SessionStart hook as Claude Code does (``sh -c``); its stdout."""
    done = subprocess.run(
        ["sh", "-c", HOOK],
        input=hook_input,
        capture_output=True,
        encoding="utf-8",
        env=env,
        timeout=HUNG,
        check=True,
    )
    return done.stdout


async def main(hook_input: str) -> None:
    env = dict(os.environ)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "relaybus", "mcp"], env=env, cwd=os.getcwd()
    )
    with anyio.fail_after(HUNG), open(os.devnull, "w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            who = await client.call_tool("whoami", {})
            whoami = who.content[0].text  # type: ignore[union-attr]
            hook = await anyio.to_thread.run_sync(lambda: run_hook(hook_input, env))
    print(json.dumps({"whoami": whoami, "hook": hook}))


def hooks_only(hook_input: str) -> None:
    sys.stdout.write(run_hook(hook_input, dict(os.environ)).strip() + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # the session lasts until the test closes our stdin


if __name__ == "__main__":
    if sys.argv[1] == "--hooks-only":
        hooks_only(sys.argv[2])
    else:
        anyio.run(main, sys.argv[1])
