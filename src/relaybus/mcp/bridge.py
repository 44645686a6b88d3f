"""``relaybus mcp`` as a bridge: MCP over stdio, relayed to the warm local relay's
streamable-HTTP ``/mcp``.

Standard library only (threads, ``http.client`` over the relay's Unix socket,
``json``): the MCP SDK, pydantic and SQLAlchemy stay in the warm relay, so the
process answers ``initialize`` and ``tools/list`` within milliseconds of its start
(once the relay runs) and a coding tool's first model request already has the
tools. Importing this module loads no part of relaybus beyond :mod:`relaybus.identity`,
:mod:`relaybus.settings`, :mod:`relaybus.bounds` and :mod:`relaybus.client.warm`.

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

import base64
import binascii
import http.client
import json
import os
import re
import signal
import sys
import threading
import urllib.parse
from pathlib import Path

from .. import identity as ident
from ..client import warm

# Not ``from typing import ...``: the bridge starts lean; type checkers treat
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any, BinaryIO

    from ..settings import Settings

#: The relay's MCP endpoint.
ENDPOINT = "/mcp"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
AGENT_HEADER = "X-Relaybus-Agent"
WORKSPACE_HEADER = "X-Relaybus-Workspace"
#: The coding-agent session a bridge serves (:func:`session_header`).
SESSION_IDENTITY_HEADER = "X-Relaybus-Session"
#: Where a 2026-07-28 request names its protocol version.
VERSION_META = "io.modelcontextprotocol/protocolVersion"
#: Methods whose named parameter a 2026-07-28 request repeats in ``Mcp-Name``.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
#: Bytes read from stdin at a time.
READ_SIZE = 64 * 1024
#: Seconds the DELETE at the end may take.
CLOSE_SECONDS = 5.0
#: Seconds between two openings of the GET stream after it ended.
REOPEN_SECONDS = 0.5
#: Signals that end the bridge cleanly (the session is deleted first).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: JSON-RPC's error codes the bridge answers with itself.
PARSE_ERROR = -32700
INTERNAL_ERROR = -32603

#: What the relay answers to ``initialize`` and the :data:`LISTED` requests at this version
#: (``scripts/mcp_listing.py`` writes it; a test holds it to the relay's answers).
LISTING = Path(__file__).with_name("listing.json")
#: The agent id the listing's instructions name, replaced by the session's.
LISTING_AGENT = "relaybus-listing-agent"
#: The listings a client asks for right after ``initialize`` (Claude Code calls a
#: server ready, and gives the model its tools, once it has all it announced).
LISTED = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")

_HEADER_SAFE = re.compile(r"[\x20-\x7E]*")
_B64_SENTINEL = re.compile(r"=\?base64\?.*\?=")


def session_header(identity: ident.SessionIdentity, hook_socket: Path | None = None) -> str:
    """The ``X-Relaybus-Session`` value: ``identity`` and where the session's hook
    commands look for their host (:func:`relaybus.identity.session_socket` in the
    bridge's environment, which the relay's need not share), as JSON, base64url
    (a header value is ASCII; a label or a folder need not be)."""
    doc = {"identity": identity.to_dict(), "hook_socket": hook_socket and str(hook_socket)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode("utf-8")).decode("ascii")


def parse_session_header(value: str) -> tuple[ident.SessionIdentity, Path | None]:
    """The identity and hook socket :func:`session_header` wrote.

    Raises:
        InvalidInput: ``value`` is not such a header.
    """
    try:
        doc = json.loads(base64.urlsafe_b64decode(value).decode("utf-8"))
        identity = ident.SessionIdentity.from_json(json.dumps(doc["identity"]))
        socket = doc.get("hook_socket")
        return identity, Path(socket) if isinstance(socket, str) and socket else None
    except (ValueError, binascii.Error, KeyError, TypeError, AttributeError) as exc:
        from ..errors import InvalidInput

        raise InvalidInput(
            f"a malformed {SESSION_IDENTITY_HEADER} header: {exc}", field=SESSION_IDENTITY_HEADER
        ) from None


def header_value(value: str) -> str:
    """``value`` as an MCP header carries it: verbatim when it is plain printable
    ASCII, else ``=?base64?…?=`` (the 2026-07-28 revision's rule, as the SDK's
    ``encode_header_value``)."""
    if (
        _HEADER_SAFE.fullmatch(value)
        and value == value.strip()
        and not _B64_SENTINEL.fullmatch(value)
    ):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def load_listing(path: Path = LISTING) -> dict[str, Any] | None:
    """The :data:`LISTING` if it is this relaybus version's, else None."""
    from .. import __version__

    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("relaybus") == __version__ else None


def _modern(params: Mapping[str, Any]) -> bool:
    """Whether request ``params`` are a 2026-07-28 request's (they name the version)."""
    meta = params.get("_meta")
    return isinstance(meta, dict) and VERSION_META in meta


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


def events(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The ``data`` of each server-sent event of ``response`` (events without
    data, such as a stream's priming event, are skipped)."""
    data: list[bytes] = []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)


class Bridge:
    """One stdio client's MCP session on the warm relay.

    With a :data:`LISTING` of this relaybus version it answers a handshake-era
    ``initialize`` and then the :data:`LISTED` requests itself, at once, while the relay starts
    (:meth:`start`) and the session is opened on it with the client's own
    ``initialize``; every other message waits for that.

    Args:
        socket: the warm relay's socket.
        headers: sent with every request (the session's identity and agent).
        out: where the server's messages are written, one line each.
        ensure: starts or finds the warm relay; returns its socket.
        listing: what the relay answers to ``initialize`` and the :data:`LISTED` requests
            (:func:`load_listing`), or None to relay those too.
        agent_id: the session's agent, named in the instructions.
    """

    def __init__(
        self,
        socket: Path,
        headers: Mapping[str, str],
        out: BinaryIO,
        ensure: Callable[[], Path],
        *,
        listing: Mapping[str, Any] | None = None,
        agent_id: str = "",
    ) -> None:
        self.socket = socket
        self.headers = dict(headers)
        self.listing = listing
        self.agent_id = agent_id
        self.session_id: str | None = None
        #: The protocol version ``initialize`` negotiated (handshake era).
        self.version: str | None = None
        self.stopping = threading.Event()
        self._out = out
        self._ensure = ensure
        self._out_lock = threading.Lock()
        self._lock = threading.Lock()  # session state
        self._reconnecting = threading.Lock()
        self._initialize: bytes | None = None
        self._initialized = False
        self._generation = 0
        self._in_flight: dict[str, tuple[http.client.HTTPConnection, bool]] = {}
        self._streaming = False
        #: The relay answers (set by :meth:`start`).
        self._relay_ready = threading.Event()
        #: No session is being opened for an ``initialize`` answered here.
        self._session_ready = threading.Event()
        self._session_ready.set()
        self._local = False  # the session's initialize was answered here
        self._opened = False  # the session's initialize reached the relay
        self._starter: threading.Thread | None = None
        self._modern = False  # a 2026-07-28 request was relayed (no session: no DELETE)

    def start(self, running: bool) -> None:
        """Let requests go to the relay: at once when it is ``running`` (at this
        version), else once it has been started, in a thread."""
        if running:
            self._relay_ready.set()
        else:
            self._starter = self._spawn(self._start_relay)

    def _start_relay(self) -> None:
        try:
            socket = self._ensure()
        except Exception as exc:  # a RelayError or OSError: every request will say why
            sys.stderr.write(f"relaybus: error: {exc}\n")
        else:
            with self._lock:
                self.socket = socket
        finally:
            self._relay_ready.set()

    # -- stdin side -------------------------------------------------------------

    def handle(self, line: bytes) -> None:
        """Relay one line of stdin (one JSON-RPC message or batch) to the relay."""
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            self.write({"jsonrpc": "2.0", "id": None, "error": error(PARSE_ERROR, "Parse error")})
            return
        if not isinstance(message, dict):  # a batch: relayed as it is
            self._spawn(self.post, message, line)
            return
        method = message.get("method")
        if method == "initialize":
            answer = self._local_initialize(message)
            with self._lock:
                self._initialize, self._initialized = line, False
                self.session_id = self.version = None
                self._local, self._opened = answer is not None, False
            if answer is None:
                self.post(message, line)  # alone: the rest need its session
                with self._lock:
                    self._opened = True
                return
            self._session_ready.clear()
            self.write(answer)
            self._spawn(self._open, line)
        elif method in LISTED and self._local_list(method, message):
            pass
        elif method == "notifications/cancelled" and self._cancel(message):
            pass
        elif method is not None and "id" in message:
            self._spawn(self.post, message, line)  # a request's answer may take long
        elif method == "notifications/initialized":
            with self._lock:
                self._initialized = True
                opened = self._opened
            if opened:  # else :meth:`_open` sends it once the session is open
                self._initialized_sent()
        else:
            self.post(message, line)  # notifications and responses, in order

    def _initialized_sent(self) -> None:
        """Relay ``notifications/initialized``, then keep the GET stream open."""
        note = b'{"jsonrpc": "2.0", "method": "notifications/initialized"}'
        self.post(json.loads(note), note, quiet=True)
        with self._lock:
            start = not self._streaming and self.session_id is not None
            self._streaming = self._streaming or start
        if start:
            self._spawn(self.listen)

    def _open(self, initialize: bytes) -> None:
        """Open the session on the relay for an ``initialize`` answered here."""
        self._relay_ready.wait()
        try:
            if self.stopping.is_set():
                return  # the client left before the relay was there: nothing to open
            self.post(json.loads(initialize), initialize, quiet=True)
        finally:
            with self._lock:
                self._opened = True
                initialized = self._initialized
            if initialized:
                self._initialized_sent()
            self._session_ready.set()

    def _local_initialize(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to a handshake-era ``initialize`` from :attr:`listing` (the
        version negotiated as the SDK's server does), or None to relay it."""
        params = message.get("params")
        if self.listing is None or not isinstance(params, dict) or _modern(params):
            return None
        versions = self.listing["handshake_versions"]
        requested = params.get("protocolVersion")
        result = dict(self.listing["initialize"])
        result["protocolVersion"] = requested if requested in versions else versions[-1]
        result["instructions"] = result["instructions"].replace(LISTING_AGENT, self.agent_id)
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}

    def _local_list(self, method: str, message: dict[str, Any]) -> bool:
        """Answer a :data:`LISTED` request from :attr:`listing` in a session whose
        ``initialize`` was answered here (no cursor: each list has one page)."""
        params = message.get("params") or {}
        if not self._local or self.listing is None or "id" not in message:
            return False
        if not isinstance(params, dict) or set(params) - {"_meta"} or _modern(params):
            return False
        result = self.listing["lists"][method]
        self.write({"jsonrpc": "2.0", "id": message["id"], "result": result})
        return True

    def _cancel(self, message: dict[str, Any]) -> bool:
        """A 2026-07-28 cancellation closes the request's stream (that revision
        has no client notifications over HTTP); True when it was one."""
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        key = json.dumps(request_id)
        with self._lock:
            found = self._in_flight.get(key)
            if found is None or not found[1]:
                return False
            del self._in_flight[key]
        close_quietly(found[0])
        return True

    def _spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except Exception as exc:  # the thread's top: say it, unless on the way out
                if not self.stopping.is_set():
                    sys.stderr.write(f"relaybus: bridge: {type(exc).__name__}: {exc}\n")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    # -- the relay side ---------------------------------------------------------

    def post(self, message: Any, body: bytes, *, retry: bool = True, quiet: bool = False) -> None:
        """POST one message (or batch) and write every message of the answer
        (none when ``quiet``: a replayed ``initialize``).

        A relay that went away, or that no longer knows the session, is started
        again and a new session opened, then the message is sent once more.
        """
        single = message if isinstance(message, dict) else {}
        method = single.get("method")
        request_id = single.get("id") if method is not None else None
        key = json.dumps(request_id) if "id" in single and method is not None else None
        if not quiet:
            self._relay_ready.wait()
            self._session_ready.wait()
            with self._reconnecting:  # never while a new session is being opened
                pass
        headers, modern = self._headers(single)
        self._modern = self._modern or modern
        generation = self._generation
        connection = stream_connection(self.socket)
        if key is not None:
            with self._lock:
                self._in_flight[key] = (connection, modern)
        try:
            connection.request("POST", ENDPOINT, body=body, headers=headers)
            response = connection.getresponse()
            if response.status == 404 and headers.get(SESSION_HEADER) and method != "initialize":
                response.read()
                raise ConnectionResetError("the relay no longer knows the MCP session")
            if method == "initialize" and response.status < 300:
                with self._lock:
                    self.session_id = response.getheader(SESSION_HEADER)
            self._relay_answer(response, single, capture=method == "initialize", quiet=quiet)
        except (OSError, http.client.HTTPException) as exc:
            if self.stopping.is_set() or (key is not None and self._dropped(key, connection)):
                return  # closed on purpose: stopping, or a cancelled request
            if retry and method != "initialize" and self._reconnect(generation):
                self.post(message, body, retry=False)
            elif "id" in single and method is not None:
                self.write(
                    {"jsonrpc": "2.0", "id": request_id, "error": error(INTERNAL_ERROR, str(exc))}
                )
        finally:
            if key is not None:
                with self._lock:
                    if self._in_flight.get(key, (None,))[0] is connection:
                        del self._in_flight[key]
            connection.close()

    def _dropped(self, key: str, connection: http.client.HTTPConnection) -> bool:
        with self._lock:
            return self._in_flight.get(key, (None,))[0] is not connection

    def _headers(self, message: dict[str, Any]) -> tuple[dict[str, str], bool]:
        """The headers of a POST of ``message``, and whether it is a 2026-07-28 request."""
        headers = {
            **self.headers,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        version = meta.get(VERSION_META) if isinstance(meta, dict) else None
        method = message.get("method")
        if isinstance(version, str) and isinstance(method, str):
            assert isinstance(params, dict)
            headers[VERSION_HEADER] = version
            headers[METHOD_HEADER] = method
            named = params.get(NAME_BEARING.get(method, ""))
            if isinstance(named, str):
                headers[NAME_HEADER] = header_value(named)
            return headers, True
        if method != "initialize":
            with self._lock:
                if self.session_id is not None:
                    headers[SESSION_HEADER] = self.session_id
                if self.version is not None:
                    headers[VERSION_HEADER] = self.version
        return headers, False

    def _relay_answer(
        self,
        response: http.client.HTTPResponse,
        message: dict[str, Any],
        *,
        capture: bool,
        quiet: bool,
    ) -> None:
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "text/event-stream":
            for data in events(response):
                self._relay_data(data, capture=capture, quiet=quiet)
            return
        body = response.read()
        if response.status == 202 or not body.strip():
            return
        if kind == "application/json":
            self._relay_data(body, capture=capture, quiet=quiet)
        elif quiet:
            return
        elif "id" in message and message.get("method") is not None:
            detail = body.decode("utf-8", "replace")
            with_detail = f"the relay answered {response.status}: {detail}"
            self.write(
                {"jsonrpc": "2.0", "id": message["id"], "error": error(INTERNAL_ERROR, with_detail)}
            )

    def _relay_data(self, data: bytes, *, capture: bool = False, quiet: bool = False) -> None:
        """Write one message of the relay's (``capture``: the answer to
        ``initialize``, whose protocol version later requests carry)."""
        try:
            doc = json.loads(data)
        except ValueError:
            return  # not a message: nothing a client could use
        if capture and isinstance(doc, dict):
            result = doc.get("result")
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            if isinstance(version, str):
                with self._lock:
                    self.version = version
        if not quiet:
            self.write(doc)

    def listen(self) -> None:
        """Keep the GET stream of the session open, writing the server's messages;
        opened again when it ends (a relay restart opens a new session first)."""
        while not self.stopping.is_set():
            with self._lock:
                session_id, version, generation = self.session_id, self.version, self._generation
            if session_id is None:
                break
            headers = {**self.headers, "Accept": "text/event-stream", SESSION_HEADER: session_id}
            if version is not None:
                headers[VERSION_HEADER] = version
            connection = stream_connection(self.socket)
            with self._lock:
                self._in_flight["listen"] = (connection, False)
            try:
                connection.request("GET", ENDPOINT, headers=headers)
                response = connection.getresponse()
                if response.status in (405, 409):
                    break  # no stream offered, or one is open already
                if response.status == 404:
                    raise ConnectionResetError("the relay no longer knows the MCP session")
                for data in events(response):
                    self._relay_data(data)
            except (OSError, http.client.HTTPException):
                if self.stopping.is_set() or not self._reconnect(generation):
                    break
                continue
            finally:
                close_quietly(connection)
            self.stopping.wait(REOPEN_SECONDS)
        with self._lock:
            self._streaming = False

    def _reconnect(self, generation: int) -> bool:
        """Start the warm relay again and open a new session with the client's
        ``initialize`` (unless another thread did since ``generation``, the
        generation the caller's failed request was sent in); whether there is a
        session to go on with."""
        with self._reconnecting:  # one thread reconnects; the others wait and go on
            with self._lock:
                if self._generation != generation:
                    return self.session_id is not None or self._initialize is None
                replay, initialized = self._initialize, self._initialized
            try:
                socket = self._ensure()
            except Exception as exc:  # a RelayError, or OSError: say it, then give up
                sys.stderr.write(f"relaybus: the warm relay is gone: {exc}\n")
                return False
            with self._lock:
                self.socket = socket
                self.session_id = self.version = None
            if replay is not None:
                self.post(json.loads(replay), replay, retry=False, quiet=True)
                if initialized and self.session_id is not None:
                    note = b'{"jsonrpc": "2.0", "method": "notifications/initialized"}'
                    self.post(json.loads(note), note, retry=False, quiet=True)
            with self._lock:
                self._generation += 1
                return replay is None or self.session_id is not None

    # -- the way out ------------------------------------------------------------

    def write(self, message: Any) -> None:
        """Write one message to stdout, as one line.

        A client gone (a broken pipe) stops the bridge.
        """
        line = json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"
        with self._out_lock:
            try:
                self._out.write(line)
                self._out.flush()
            except (BrokenPipeError, ValueError):
                self.stopping.set()

    def close(self) -> None:
        """End the session: the relay marks its agent offline (DELETE), and every
        open request is dropped."""
        self.stopping.set()
        if self._starter is not None:  # a relay being started is left running, not half-made
            self._starter.join(warm.START_TIMEOUT)
        self._relay_ready.set()  # a session not opened yet never will be
        self._session_ready.wait(CLOSE_SECONDS)  # one being opened is, then deleted
        with self._lock:
            session_id, connections = self.session_id, list(self._in_flight.values())
            self._in_flight.clear()
        for connection, _ in connections:
            close_quietly(connection)
        try:
            if session_id is not None:
                headers = {**self.headers, SESSION_HEADER: session_id}
                if self.version is not None:
                    headers[VERSION_HEADER] = self.version
                warm.request(
                    self.socket, "DELETE", ENDPOINT, headers=headers, timeout=CLOSE_SECONDS
                )
            elif self._modern and self.agent_id:
                # 2026-07-28 has no session to end: the agent its requests registered
                # goes offline as the in-process server's does (a 404: never registered).
                target = f"/v1/agents/{urllib.parse.quote(self.agent_id, safe='')}"
                body = json.dumps({"status": "offline"}).encode("utf-8")
                headers = {**self.headers, "Content-Type": "application/json"}
                warm.request(
                    self.socket, "PATCH", target, body=body, headers=headers, timeout=CLOSE_SECONDS
                )
        except OSError:
            pass  # the relay is gone: its sessions went with it


def error(code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error object."""
    return {"code": code, "message": message}


def stream_connection(socket: Path) -> http.client.HTTPConnection:
    """A connection to the relay at ``socket`` with no read timeout: a stream
    (the GET stream, a long wait) may stay quiet for hours."""
    connection = warm.UnixHTTPConnection(socket)
    connection.timeout = None
    return connection


def close_quietly(connection: http.client.HTTPConnection) -> None:
    """Close ``connection`` at once, also while another thread reads from it."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(2)  # SHUT_RDWR: wakes a thread blocked in a read
        except OSError:
            pass
    connection.close()


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
    except ident.ProfileError as exc:
        return fail(str(exc), 2)
    except RelayError as exc:
        return fail(exc.message, exc.exit_code)


def fail(message: str, code: int) -> int:
    """Say ``message`` on stderr as the CLI does (one line); returns ``code``."""
    sys.stderr.write(f"relaybus: error: {' '.join(message.split())}\n")
    return code
