"""Helpers for the MCP tests: real ``relaybus mcp`` processes and real MCP clients.

Every stdio session is ``python -m relaybus mcp`` spawned by the ``mcp`` SDK's own
client, on a relay in ``tmp_path`` (``RELAYBUS_DIR``): with the :func:`daemon` fixture
through the bridge to the warm relay (which the fixture stops afterwards) and, for tests
marked ``in_process_too``, in-process with ``RELAYBUS_DAEMON=0`` as well; else
in-process; with ``HOME`` and ``XDG_CONFIG_HOME`` in ``tmp_path`` too, its stderr in
``tmp_path/NAME.log`` and its hook socket in the test's own ``XDG_RUNTIME_DIR``. HTTP
sessions talk to :func:`tests.support.live.live_server`. Scenarios are coroutines
run by :func:`run` under one deadline.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import MessageHandlerFnT
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from relaybus.client import warm
from tests.support.live import UNUSED_TLS

#: Seconds a scenario may take before it is called hung: far above a real run.
HUNG = 60.0

RELAYBUS = [sys.executable, "-m", "relaybus"]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh event loop; fail if it takes :data:`HUNG` seconds."""

    async def bounded() -> None:
        with anyio.fail_after(HUNG):
            await scenario()

    anyio.run(bounded)


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's own short ``XDG_RUNTIME_DIR`` (a socket path has at most 107 bytes).

    ``relaybus mcp`` serves its session's hooks on ``$XDG_RUNTIME_DIR/relaybus/KEY.sock``,
    else in one folder per user under /tmp: two tests with session key ``a`` running at
    once (pytest-xdist workers) would otherwise meet on one socket.
    """
    folder = Path(tempfile.mkdtemp(prefix="rbm-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test using :func:`daemon` runs through the bridge, the path every session takes by
    default; marked ``in_process_too`` it runs in-process as well. The in-process set is
    what differs there (the session's own process: registration, signals, disconnects,
    waits, notifications); the tools and their errors are the same code both ways, and an
    in-process ``relaybus mcp`` costs seconds of CPU (the MCP SDK's import)."""
    if "daemon" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("in_process_too") is not None
        paths = ["bridge", "in-process"] if both else ["bridge"]
        metafunc.parametrize("daemon", paths, indirect=True)


@pytest.fixture
def daemon(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """How ``relaybus mcp`` runs: ``bridge`` (to the warm relay of ``tmp_path/.relay``,
    stopped by pid afterwards) or ``in-process`` (``RELAYBUS_DAEMON=0``): see
    :func:`pytest_generate_tests`."""
    monkeypatch.setenv("RELAYBUS_DAEMON", "1" if request.param == "bridge" else "0")
    try:
        yield request.param
    finally:
        warm.stop(tmp_path / ".relay")


def home_env(tmp_path: Path) -> dict[str, str]:
    """``HOME`` and ``XDG_CONFIG_HOME`` inside ``tmp_path`` (profiles.toml lives there)."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def session_env(tmp_path: Path, session: str, **env: str) -> dict[str, str]:
    """The environment of one ``relaybus mcp``: the test's relay, its own session key."""
    return {
        "RELAYBUS_DIR": str(tmp_path / ".relay"),
        "RELAYBUS_SESSION": session,
        "RELAYBUS_DAEMON": os.environ.get("RELAYBUS_DAEMON", "0"),
        "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"],
        **home_env(tmp_path),
        **env,
    }


@asynccontextmanager
async def stdio_session(
    tmp_path: Path,
    name: str,
    *,
    mode: str = "legacy",
    message_handler: MessageHandlerFnT | None = None,
    **env: str,
) -> AsyncIterator[Client]:
    """A connected MCP client of a ``relaybus mcp`` process with session key ``name``
    (and ``env`` on top, e.g. ``RELAYBUS_AGENT``). ``mode`` is the client's: ``legacy``
    (the initialize handshake) or ``auto`` (2026-07-28 when the server speaks it)."""
    params = StdioServerParameters(
        command=RELAYBUS[0],
        args=[*RELAYBUS[1:], "mcp"],
        env=session_env(tmp_path, name, **env),
        cwd=tmp_path,
    )
    with open(tmp_path / f"{name}.log", "a", encoding="utf-8") as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(transport, mode=mode, message_handler=message_handler) as client:
            yield client


@asynccontextmanager
async def http_session(
    url: str,
    *,
    mode: str = "legacy",
    headers: dict[str, str] | None = None,
    message_handler: MessageHandlerFnT | None = None,
    terminate_on_close: bool = True,
) -> AsyncIterator[Client]:
    """A connected MCP client of the relay server's ``/mcp``, sending ``headers``."""
    timeout = httpx2.Timeout(HUNG, read=HUNG)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout, verify=UNUSED_TLS) as http:
        transport = streamable_http_client(
            f"{url}/mcp", http_client=http, terminate_on_close=terminate_on_close
        )
        async with Client(transport, mode=mode, message_handler=message_handler) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool`` and return its text; fails the test if it is a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text(result)}"
    return text(result)


async def fail(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool``, which must answer with a tool error; returns the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} did not fail: {text(result)}"
    return text(result)


def text(result: CallToolResult) -> str:
    """The text of a tool result (its one text block)."""
    assert len(result.content) == 1, result.content
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text
