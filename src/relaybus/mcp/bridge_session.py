"""One stdio client's MCP session on the warm relay (:class:`Bridge`): each line of
stdin relayed to the relay's streamable-HTTP ``/mcp`` and each message of its answers
written to stdout, the session opened again when the relay comes back, and ended
(DELETE) when the client leaves.

The process around it (arguments, signals, stdin) is :mod:`relaybus.mcp.bridge`,
which re-exports these names; the protocol's details are there too. Standard
library only.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.parse

from ..client import warm
from .listing import LISTED, initialize_answer, list_answer
from .streamable import (
    ENDPOINT,
    METHOD_HEADER,
    NAME_BEARING,
    NAME_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
    VERSION_META,
    events,
    header_value,
)

# Not ``from typing import ...``: the bridge starts lean; type checkers treat
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any, BinaryIO

#: Seconds the DELETE at the end may take.
CLOSE_SECONDS = 5.0
#: Seconds between two openings of the GET stream after it ended.
REOPEN_SECONDS = 0.5
#: JSON-RPC's error codes the bridge answers with itself.
PARSE_ERROR = -32700
INTERNAL_ERROR = -32603


class Bridge:
    """One stdio client's MCP session on the warm relay.

    With a :data:`~relaybus.mcp.listing.LISTING` of this relaybus version it answers a
    handshake-era ``initialize`` and then the :data:`LISTED` requests itself, at once,
    while the relay starts (:meth:`start`) and the session is opened on it with the
    client's own ``initialize``; every other message waits for that.

    Args:
        socket: the warm relay's socket.
        headers: sent with every request (the session's identity and agent).
        out: where the server's messages are written, one line each.
        ensure: starts or finds the warm relay; returns its socket.
        launched: whether a relay has taken the relay folder (:func:`warm.held`): one
            being started needs this process no longer, the next caller waits for it.
        listing: what the relay answers to ``initialize`` and the :data:`LISTED` requests
            (:func:`~relaybus.mcp.listing.load_listing`), or None to relay those too.
        agent_id: the session's agent, named in the instructions.
    """

    def __init__(
        self,
        socket: Path,
        headers: Mapping[str, str],
        out: BinaryIO,
        ensure: Callable[[], Path],
        *,
        launched: Callable[[], bool] = lambda: True,
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
        self._launched = launched
        self._starter: threading.Thread | None = None
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
        """The answer to a handshake-era ``initialize`` from :attr:`listing`, or None
        to relay it (:func:`~relaybus.mcp.listing.initialize_answer`)."""
        if self.listing is None:
            return None
        return initialize_answer(self.listing, message, self.agent_id)

    def _local_list(self, method: str, message: dict[str, Any]) -> bool:
        """Answer a :data:`~relaybus.mcp.listing.LISTED` request from :attr:`listing`
        in a session whose ``initialize`` was answered here; whether it was."""
        if not self._local or self.listing is None:
            return False
        answer = list_answer(self.listing, method, message)
        if answer is None:
            return False
        self.write(answer)
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
        # A relay being started is waited for until it has taken its folder, not until it
        # answers (about a second later): it starts detached, and the next caller waits
        # for it rather than taking its silent socket for a stale one (warm_start.start).
        deadline = time.monotonic() + warm.START_TIMEOUT
        while self._starter is not None and self._starter.is_alive():
            if self._launched() or time.monotonic() > deadline:
                break
            self._starter.join(0.01)
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
