"""The session's hook service: a Unix socket in the session's ``relaybus mcp``
process that runs hook events for the session's hook commands.

Protocol, one JSON object per line: the command writes the request
(``{"event": "Stop", "input": {...hook input...}, "printed": [ids]}``) and reads
``{"output": {...} | null, "shown": N}`` or ``{"error": "one line"}``. When
``shown`` (the number of messages the output hands over) is not 0, the
command prints the output and then writes ``{"ack": true}``; only then are
those messages marked read, and the host answers ``{"done": true}``. A
command that gave up before printing (its time ran out) writes no ack, and
the mail stays unread for the next hook. ``printed`` are the ids of mail
earlier hooks printed themselves while this process was starting
(:mod:`.direct`): they are marked read (``via=hook``) before the event runs,
so it does not show them again. The socket lives in a folder only
this user can enter (:func:`relaybus.identity.session_socket`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from ...client import AgentHandle
from ...errors import RelayError
from ...identity import SessionIdentity, session_socket
from ...models import Via
from .logic import HookOutcome, deliver, handle

logger = logging.getLogger(__name__)

#: The largest request the host reads, in bytes (a hook input is a few KB;
#: PostToolUse carries the tool's response, which can be large).
MAX_REQUEST = 4 * 1024 * 1024
#: Seconds the host waits for a command's ack before it leaves the mail unread.
ACK_SECONDS = 10.0

#: ``agent()``: the session's agent, registered on first use (see
#: :class:`relaybus.mcp.session.StdioSession`).
AgentGetter = Callable[[], Awaitable[AgentHandle]]


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


def parse(request: bytes) -> tuple[str, dict[str, Any], list[int]]:
    """The event name, hook input and printed ids of a request line.

    Raises:
        ValueError: not a hook request.
    """
    try:
        body = json.loads(request)
        event, payload = body["event"], body.get("input") or {}
        printed = body.get("printed") or []
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"bad hook request: {exc}") from None
    if not isinstance(event, str) or not isinstance(payload, dict):
        raise ValueError("bad hook request: event must be a string and input an object")
    if not isinstance(printed, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in printed
    ):
        raise ValueError("bad hook request: printed must be a list of message ids")
    return event, payload, printed


def other_session(payload: dict[str, Any], identity: SessionIdentity | None) -> str | None:
    """Why a hook input is not this Codex session's, or None when it may be.

    Codex's TUI runs its sessions in one shared app-server process (0.171), so
    every session's ``relaybus mcp`` and hooks derive the same session key and
    find the same hook socket. A hook from another folder belongs to another
    session (with its own agent): answering it would hand it this agent's mail.
    """
    if identity is None or identity.tool != "codex":
        return None
    cwd = payload.get("cwd")
    if not isinstance(cwd, str) or os.path.realpath(cwd) == os.path.realpath(identity.cwd):
        return None
    return f"a hook of another Codex session (in {cwd}, not {identity.cwd})"


def answer(
    request: bytes, me: AgentHandle, identity: SessionIdentity | None
) -> tuple[dict[str, Any], HookOutcome | None]:
    """Run one request line: the reply object and the outcome whose mail
    waits for the command's ack (never raises for bad requests or relay errors).
    A hook of another session (:func:`other_session`) gets an error: it then
    works on its own, for its own agent."""
    try:
        event, payload, printed = parse(request)
        refused = other_session(payload, identity)
        if refused:
            return {"error": refused}, None
        if printed:  # shown by earlier hooks themselves: handed over already
            me.mark_read(printed, via=Via.HOOK)
        outcome = handle(event, payload, me, identity)
    except (RelayError, ValueError) as exc:
        return {"error": str(exc)}, None
    return {"output": outcome.output, "shown": len(outcome.shown)}, outcome


@asynccontextmanager
async def session_host(
    me: AgentHandle | AgentGetter, identity: SessionIdentity, *, path: Path | None = None
) -> AsyncIterator[Path | None]:
    """Serve the session's hook commands while the context is open.

    ``me`` is the session's agent, or an async function that returns it
    (registering it on the first hook: a hook proves a real session).
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

    async def agent() -> AgentHandle:
        return me if isinstance(me, AgentHandle) else await me()

    async def reply(client: anyio.abc.SocketStream, doc: dict[str, Any]) -> None:
        await client.send(json.dumps(doc).encode("utf-8") + b"\n")

    async def serve(client: anyio.abc.SocketStream) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            try:
                request = await reader.receive_until(b"\n", MAX_REQUEST)
            except (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.EndOfStream):
                return
            try:
                handle_ = await agent()
            except RelayError as exc:
                doc: dict[str, Any] = {"error": str(exc)}
                outcome = None
            else:
                doc, outcome = await anyio.to_thread.run_sync(answer, request, handle_, identity)
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await reply(client, doc)
                if outcome is None or not outcome.shown:
                    return
                with anyio.move_on_after(ACK_SECONDS):
                    ack = json.loads(await reader.receive_until(b"\n", 1024))
                    if isinstance(ack, dict) and ack.get("ack") is True:
                        await anyio.to_thread.run_sync(deliver, handle_, outcome)
                        await reply(client, {"done": True})

    async def guarded(client: anyio.abc.SocketStream) -> None:
        try:
            await serve(client)
        except (RelayError, ValueError, anyio.IncompleteRead, anyio.DelimiterNotFound) as exc:
            logger.warning("hook request failed: %s", exc)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the command went away (gave up): its mail stays unread

    try:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, guarded)
            try:
                yield path
            finally:
                tg.cancel_scope.cancel()
    finally:
        with suppress(OSError):
            path.unlink()
