"""``relaybus mcp``: serve MCP over stdio as this coding-agent session's agent.

The session's identity is checked and the relay reached before the first
byte of MCP is spoken, so a bad profile or an unreachable relay is one line
on stderr and a non-zero exit (the CLI's error path), never a half-started
server. The agent itself is registered on first use (see
:class:`~relaybus.mcp.session.StdioSession`), so a client that only checks
the connection leaves none behind. The server runs until stdin reaches EOF
(the client disconnected) or SIGTERM / SIGINT / SIGHUP arrives; either way a
registered agent is marked offline on the way out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from ..client import AgentHandle, Relay
from ..errors import NotFound
from ..identity import SessionIdentity
from .resources import AgentBus
from .server import build_server, lowlevel
from .session import Runtime, SessionHost, StdioSession, mark_offline

#: Bytes read from stdin at a time.
READ_SIZE = 64 * 1024
#: Signals that end the server cleanly (the agent goes offline first).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def serve_stdio(
    relay: Relay,
    identity: SessionIdentity,
    *,
    register: Callable[[Relay, SessionIdentity], AgentHandle],
    host: SessionHost | None = None,
) -> None:
    """Serve MCP over stdin/stdout as the session's agent on ``relay`` until
    EOF or a stop signal; returns once the agent (if it was registered) is
    marked offline.

    ``register(relay, identity)`` registers the session's agent on first use;
    ``host`` runs beside the session (see :data:`~.session.SessionHost`). Both
    come from the composition point, :mod:`relaybus.cli.mcp`.

    Raises:
        RelayError: the identity is invalid or the relay cannot be reached
            (nothing was served).
    """
    stop = StopSignals()
    with stop.caught():  # from before registration until the agent is offline
        check(relay, identity)
        bus = AgentBus()
        heartbeat = max(relay.settings.stale_ttl / 3, 1.0)
        session = StdioSession(
            relay,
            identity,
            partial(register, relay, identity),
            bus=bus,
            heartbeat_seconds=heartbeat,
            host=host,
        )
        try:
            server = build_server(session.lifespan, bus=bus, agent_id=identity.agent_id)
            if not stop.requested:
                anyio.run(_serve, server, stop)
        finally:
            if session.handle is not None:
                mark_offline(session.handle)


def check(relay: Relay, identity: SessionIdentity) -> None:
    """Check what registering the session will need, without registering:
    valid names, and a relay that answers.

    Raises:
        InvalidInput: a malformed agent id, tag, capability or channel.
        RelayError: the relay cannot be reached.
    """
    from ..service.common import check_name, check_names

    profile = identity.profile
    check_name("agent id", identity.agent_id)
    check_names("tag", profile.tags)
    check_names("capability", profile.capabilities)
    check_names("channel", profile.channels)
    try:
        relay.get_agent(identity.agent_id)
    except NotFound:
        pass  # not registered yet: the relay answered, which is what counts


async def _serve(server: MCPServer[Runtime], stop: StopSignals) -> None:
    low = lowlevel(server)
    with anyio.CancelScope() as scope, stop.cancelling(scope):
        async with stdio_server(stdin=PipeLines()) as (read_stream, write_stream):
            await low.run(read_stream, write_stream, low.create_initialization_options())


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP as a request to stop serving, not a sudden death.

    Inside :meth:`caught` a stop signal only sets :attr:`requested`; inside
    :meth:`cancelling` (on the event loop) it also cancels the serving scope.
    Plain handlers rather than the event loop's own, so a signal that lands
    between registration and the loop's start, or while the agent is being
    marked offline, is not lost.
    """

    def __init__(self) -> None:
        self.requested = False
        self._cancel: Callable[[], None] | None = None

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        if self._cancel is not None:
            self._cancel()

    @contextmanager
    def caught(self) -> Iterator[None]:
        """Catch the stop signals for the duration of the block."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def cancelling(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Cancel ``scope`` on a stop signal (at once if one came already)."""
        loop = asyncio.get_running_loop()

        # The handler runs between bytecodes of the loop's own thread: hand the
        # cancel to the loop rather than touching the scope from inside a callback.
        def cancel() -> None:
            loop.call_soon_threadsafe(scope.cancel)

        self._cancel = cancel
        try:
            if self.requested:
                scope.cancel()
            yield
        finally:
            self._cancel = None


class PipeLines(anyio.AsyncFile[str]):
    """stdin as lines, read on the event loop.

    The SDK reads stdin in a worker thread that nothing can interrupt, so a
    server told to stop (SIGTERM) while the client keeps stdin open would
    hang in that read and then in interpreter exit. Here the loop waits for
    the descriptor to be readable and reads what is there; a descriptor the
    loop cannot watch (a regular file) is read in an abandonable thread.
    """

    def __init__(self, fd: int = 0) -> None:
        super().__init__(sys.stdin)
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False
        self._selectable = True

    async def readline(self) -> str:
        """The next line with its ``\\n``; ``""`` at EOF. Invalid UTF-8 is replaced."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or self._eof:
                cut = end + 1 if end >= 0 else len(self._buffer)
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return line.decode("utf-8", errors="replace")
            chunk = await self._read()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def _read(self) -> bytes:
        if self._selectable:
            try:
                await anyio.wait_readable(self._fd)
            except (OSError, ValueError):  # epoll refuses regular files
                self._selectable = False
            else:
                return os.read(self._fd, READ_SIZE)
        return await anyio.to_thread.run_sync(os.read, self._fd, READ_SIZE, abandon_on_cancel=True)
