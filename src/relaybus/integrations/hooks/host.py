"""The session's hook service: a Unix socket in the session's ``relaybus mcp``
process that runs hook events for the session's hook commands.

Protocol: the command connects, writes one JSON object and a newline
(``{"event": "Stop", "input": {...hook input...}}``), and reads one JSON line
back: ``{"output": {...} | null}`` or ``{"error": "one line"}``. The socket
lives in a folder only this user can enter (:func:`relaybus.identity.session_socket`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from ...client import AgentHandle
from ...errors import RelayError
from ...identity import SessionIdentity, session_socket
from .logic import handle

logger = logging.getLogger(__name__)

#: The largest request the host reads, in bytes (a hook input is a few KB;
#: PostToolUse carries the tool's response, which can be large).
MAX_REQUEST = 4 * 1024 * 1024


def private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) or check that an existing one is this
    user's and closed to others.

    Raises:
        PermissionError: the folder belongs to someone else or others can enter it.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{folder} is open to other users (chmod 700 it)")


def in_use(path: Path) -> bool:
    """True if a live process accepts connections on the socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def answer(request: bytes, me: AgentHandle, identity: SessionIdentity | None) -> dict[str, Any]:
    """Run one request line; the reply object (never raises for bad requests)."""
    try:
        body = json.loads(request)
        event, payload = body["event"], body.get("input") or {}
        if not isinstance(event, str) or not isinstance(payload, dict):
            raise TypeError("event must be a string and input an object")
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": f"bad hook request: {exc}"}
    try:
        return {"output": handle(event, payload, me, identity)}
    except (RelayError, ValueError) as exc:
        return {"error": str(exc)}


@asynccontextmanager
async def session_host(
    me: AgentHandle, identity: SessionIdentity, *, path: Path | None = None
) -> AsyncIterator[Path | None]:
    """Serve the session's hook commands while the context is open.

    Yields the socket path, or None when another live process of this session
    serves it already (e.g. relaybus configured twice for one tool) or the
    socket cannot be made; hooks then still work, more slowly, on their own.
    """
    path = path or session_socket(identity.session)
    try:
        private_folder(path.parent)
        if path.exists() or path.is_symlink():
            if in_use(path):
                logger.info("hook socket %s is served by another process", path)
                yield None
                return
            path.unlink()
        listener = await anyio.create_unix_listener(path)
    except OSError as exc:
        logger.warning("no hook socket at %s: %s", path, exc)
        yield None
        return

    async def serve(client: anyio.abc.SocketStream) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            try:
                request = await reader.receive_until(b"\n", MAX_REQUEST)
            except (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.EndOfStream):
                return
            reply = await anyio.to_thread.run_sync(answer, request, me, identity)
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await client.send(json.dumps(reply).encode("utf-8") + b"\n")

    try:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            try:
                yield path
            finally:
                tg.cancel_scope.cancel()
    finally:
        with suppress(OSError):
            path.unlink()
