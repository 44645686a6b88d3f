"""``relaybus mcp`` as a bridge: MCP over stdio, relayed to the warm local relay's
streamable-HTTP ``/mcp``.

Standard library only (threads, ``http.client`` over the relay's Unix socket,
``json``): the MCP SDK, pydantic and SQLAlchemy stay in the warm relay, so the
process answers ``initialize`` and ``tools/list`` within milliseconds of its start
(once the relay runs) and a coding tool's first model request already has the
tools. Importing this module loads no part of relaybus beyond :mod:`relaybus.identity`,
:mod:`relaybus.settings`, :mod:`relaybus.bounds`, :mod:`relaybus.client.warm` and
the bridge's own modules, whose names it re-exports:

- this module: the process (arguments, the relay folder, signals, stdin's lines);
- :mod:`.bridge_session`: the session relayed to the relay (:class:`Bridge`);
- :mod:`.listing`: the answers given before the relay's (``initialize``, the listings);
- :mod:`.streamable`: the endpoint, headers and events both sides speak.

The transport is the MCP specification's streamable HTTP (revision 2025-06-18 and
later): every line on stdin is one JSON-RPC message, POSTed to ``/mcp`` with
``Accept: application/json, text/event-stream``; the answer is a JSON body or an
SSE stream whose ``data`` lines are messages, each written to stdout as one line.
``initialize`` is sent alone (the others wait for it); its response carries the
``Mcp-Session-Id`` that every later request carries, with the negotiated
``MCP-Protocol-Version``. After ``notifications/initialized`` a ``GET /mcp`` SSE
stream stays open for the server's own messages (resource updates, logging). A
2026-07-28 request (its ``params._meta`` names the protocol version) carries the
per-request headers that revision asks for (``MCP-Protocol-Version``,
``Mcp-Method``, ``Mcp-Name``), and is cancelled by closing its stream.

Every request also says which coding-agent session it serves
(``X-Relaybus-Session``, :func:`session_header`) and as which agent
(``X-Relaybus-Agent``): the relay registers the session's agent as ``relaybus
mcp`` in-process would, on first use or a few seconds after the client said it
is initialized, heartbeats it while the session lives, and serves the session's
hook commands (:mod:`relaybus.server.mcp`). On stdin EOF or SIGTERM / SIGINT /
SIGHUP the bridge DELETEs the session, so the agent goes offline. If the relay
goes away (killed, or restarted for another version), the bridge starts it
again and opens a new session with the client's own ``initialize``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .. import identity as ident
from ..client import warm
from ..profiles import ProfileError
from .bridge_session import (
    CLOSE_SECONDS,
    INTERNAL_ERROR,
    PARSE_ERROR,
    REOPEN_SECONDS,
    Bridge,
    close_quietly,
    error,
    stream_connection,
)
from .listing import LISTED, LISTING, LISTING_AGENT, load_listing
from .streamable import (
    AGENT_HEADER,
    ENDPOINT,
    METHOD_HEADER,
    NAME_BEARING,
    NAME_HEADER,
    SESSION_HEADER,
    SESSION_IDENTITY_HEADER,
    VERSION_HEADER,
    VERSION_META,
    WORKSPACE_HEADER,
    events,
    header_value,
    parse_session_header,
    session_header,
)

# Not ``from typing import ...``: the bridge starts lean; type checkers treat
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ..settings import Settings

#: Bytes read from stdin at a time.
READ_SIZE = 64 * 1024
#: Signals that end the bridge cleanly (the session is deleted first).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def relay_dir(settings: Settings, env: Mapping[str, str] | None = None) -> Path | None:
    """The relay folder whose warm relay ``relaybus mcp`` bridges to, or None when
    it serves in-process: ``RELAYBUS_DAEMON=0``, a relay server
    (``RELAYBUS_URL``), or a database named outright (``RELAYBUS_DATABASE``)."""
    if warm.disabled(env) or settings.url or settings.database:
        return None
    from ..settings import find_relay_dir

    return Path(os.path.abspath(settings.dir or find_relay_dir()))


def check(identity: ident.SessionIdentity) -> None:
    """Check the names the session's agent will register with, before serving
    (the service's rule, :func:`relaybus.service.common.check_name`).

    Raises:
        InvalidInput: a malformed agent id, tag, capability or channel.
    """
    from ..bounds import NAME_RE

    profile = identity.profile
    names = [("agent id", identity.agent_id)]
    names += [("tag", t) for t in profile.tags] + [("capability", c) for c in profile.capabilities]
    names += [("channel", c) for c in profile.channels]
    for kind, value in names:
        if not NAME_RE.fullmatch(value):
            from ..errors import InvalidInput

            raise InvalidInput(
                f"invalid {kind} {value!r}: use 1-128 letters, digits and . _ - @ /, "
                "starting with a letter or digit",
                field=kind,
                value=value,
            )


class _Stop(Exception):
    """A stop signal arrived."""


def serve(relay_dir: Path, identity: ident.SessionIdentity, *, workspace: str | None) -> int:
    """Bridge stdin/stdout to the warm relay of ``relay_dir`` as ``identity``'s
    session until stdin's EOF or a stop signal; returns the exit code (0).

    A relay that does not start is said on stderr, and in the answer to each
    request that needed it.

    Raises:
        RelayError: a malformed name in ``identity`` (nothing was served).
    """
    check(identity)
    stopped = False

    def on_signal(_signum: int, _frame: object) -> None:
        if not stopped:
            raise _Stop

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    bridge: Bridge | None = None
    try:
        from .. import __version__

        running = warm.probe(relay_dir)
        headers = {
            AGENT_HEADER: identity.agent_id,
            SESSION_IDENTITY_HEADER: session_header(
                identity, ident.session_socket(identity.session)
            ),
        }
        if workspace:
            headers[WORKSPACE_HEADER] = workspace
        bridge = Bridge(
            warm.socket_path(relay_dir),
            headers,
            sys.stdout.buffer,
            lambda: warm.ensure(relay_dir).socket,
            launched=lambda: warm.held(relay_dir),
            listing=load_listing(),
            agent_id=identity.agent_id,
        )
        # A relay to start does not hold up the client: initialize and the listings
        # are answered from the listing meanwhile.
        bridge.start(running is not None and running.version == __version__)
        for line in lines(0):
            bridge.handle(line)
            if bridge.stopping.is_set():
                break
    except _Stop:
        pass
    finally:
        stopped = True
        try:
            if bridge is not None:
                bridge.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def lines(fd: int) -> Iterator[bytes]:
    """The lines read from ``fd`` until EOF (a last line without ``\\n`` too)."""
    buffer = b""
    while True:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from complete


def main(argv: list[str]) -> int | None:
    """``relaybus mcp [--tool NAME]`` as a bridge, straight from the console script;
    None when it is not one (``RELAYBUS_DAEMON=0``, a relay server or a database
    named outright, other arguments): the CLI then serves it."""
    tool = os.environ.get("RELAYBUS_TOOL") or "mcp"
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--tool" and args:
            tool = args.pop(0)
        elif arg.startswith("--tool="):
            tool = arg.partition("=")[2]
        else:
            return None
    from ..errors import RelayError
    from ..settings import Settings

    try:
        settings = Settings()
        folder = relay_dir(settings)
        if folder is None:
            return None
        identity = ident.session_identity(tool)
        return serve(folder, identity, workspace=settings.workspace)
    except ProfileError as exc:
        return fail(str(exc), 2)
    except RelayError as exc:
        return fail(exc.message, exc.exit_code)


def fail(message: str, code: int) -> int:
    """Say ``message`` on stderr as the CLI does (one line); returns ``code``."""
    sys.stderr.write(f"relaybus: error: {' '.join(message.split())}\n")
    return code


__all__ = [
    "AGENT_HEADER",
    "CLOSE_SECONDS",
    "ENDPOINT",
    "INTERNAL_ERROR",
    "LISTED",
    "LISTING",
    "LISTING_AGENT",
    "METHOD_HEADER",
    "NAME_BEARING",
    "NAME_HEADER",
    "PARSE_ERROR",
    "READ_SIZE",
    "REOPEN_SECONDS",
    "SESSION_HEADER",
    "SESSION_IDENTITY_HEADER",
    "STOP_SIGNALS",
    "VERSION_HEADER",
    "VERSION_META",
    "WORKSPACE_HEADER",
    "Bridge",
    "check",
    "close_quietly",
    "error",
    "events",
    "fail",
    "header_value",
    "lines",
    "load_listing",
    "main",
    "parse_session_header",
    "relay_dir",
    "serve",
    "session_header",
    "stream_connection",
]
