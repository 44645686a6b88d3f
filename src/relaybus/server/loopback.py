"""The warm local relay's dashboard for a browser: a TCP listener on 127.0.0.1, opened
on demand, in front of the same app the relay serves on its Unix socket.

A browser cannot reach a Unix socket, so ``relaybus ui`` asks the relay (over the
socket, ``POST /-/ui``: :class:`Loopback`, a route the socket alone has) to listen on
``127.0.0.1`` as well. The listener stays until the relay exits; a second request
gets the same one. Other users of this machine can reach 127.0.0.1 too, so this side
is not open like the socket: :class:`Gate` lets a request through as admin only with
the dashboard token (random, kept in the relay folder as ``ui.token``, 0600, so that a
page signed in on a fixed ``--port`` stays signed in across the relay's restarts),
and refuses a Host that is not this listener's (a page of another site whose name
resolves to 127.0.0.1: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidInput, RelayError, Unauthorized
from .problems import problem, relay_error_response
from .run import bind

if TYPE_CHECKING:
    from .run import WarmServer

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

#: The address the listener binds: loopback only.
HOST = "127.0.0.1"
#: The dashboard token's file in the relay folder.
TOKEN_FILE = "ui.token"
#: What a browser loads before it has a token: the page, its files, the API's
#: documentation, and the health checks. Everything else needs a token.
PUBLIC = frozenset({"/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/ui/", "/docs/assets/")
#: Paths that need the dashboard token itself, not an agent's (the relay has no
#: metrics token, so the app would let any token read its metrics).
ADMIN_ONLY = frozenset({"/metrics"})
#: The largest ``POST /-/ui`` body read (bytes).
MAX_BODY = 1024


class Gate:
    """ASGI middleware of the loopback listener on ``port``.

    - The Host header must be ``127.0.0.1:PORT`` or ``localhost:PORT``, else 421.
    - ``Authorization: Bearer <the dashboard token>``: the header is dropped, so the
      request is admin, as every request on the relay's socket is (open mode).
    - Another bearer token goes on to the app, which takes an agent's token as that
      agent and refuses any other with 401.
    - No token: 401 (a problem document, so the page asks for a token), except for
      :data:`PUBLIC` paths.

    Only the Authorization header counts: a ``?token=`` (which ``/v1/ws`` would take
    on a server) is not read, since a query is written to the access log.
    """

    def __init__(self, app: ASGIApp, token: str, port: int) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.hosts = frozenset({f"{HOST}:{port}".encode(), f"localhost:{port}".encode()})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = authorization = None
        for name, value in scope["headers"]:
            if name == b"host" and host is None:
                host = value.lower()
            elif name == b"authorization" and authorization is None:
                authorization = value
        if host not in self.hosts:
            await refuse(scope, receive, send, 421, "this listener answers to 127.0.0.1 only")
            return
        path: str = scope["path"]
        if authorization is not None and self.admits(authorization):
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"authorization"]
        elif path in ADMIN_ONLY or (authorization is None and not public(path)):
            await refuse(scope, receive, send, 401, UNAUTHORIZED)
            return
        await self.app(scope, receive, send)

    def admits(self, authorization: bytes) -> bool:
        """Whether an Authorization header carries the dashboard token."""
        scheme, _, token = authorization.strip().partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.token)


UNAUTHORIZED = (
    "this dashboard needs a token: the one `relaybus ui` opens the page with "
    "(`relaybus ui --no-open` prints it), or an agent's token"
)


def public(path: str) -> bool:
    """Whether ``path`` loads without a token (:data:`PUBLIC`)."""
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


async def refuse(scope: Scope, receive: Any, send: Any, status: int, detail: str) -> None:
    """Answer a problem document (401 with ``WWW-Authenticate``), to a WebSocket's
    handshake too where the server can (ASGI's ``websocket.http.response``); else the
    WebSocket is closed before it is accepted (the server answers 403)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": 1008})
        return
    if status == 401:
        response = relay_error_response(Unauthorized(detail))
    else:
        response = problem(status, detail)
    await response(scope, receive, send)


class Loopback:
    """``POST /-/ui`` on the relay's socket: open the loopback listener (once) and
    answer ``{"url": "http://127.0.0.1:PORT/", "token": TOKEN}``.

    The body is ``{"port": N}`` (0 or absent: any free port). The listener serves
    ``app`` (the relay's app, counted as activity) behind a :class:`Gate` on
    ``server`` (:meth:`~relaybus.server.run.WarmServer.add_listener`) until the relay
    exits. Errors are problem documents: 400 for a bad body, 409 when the port is in
    use or the listener is on another port already.
    """

    def __init__(self, server: WarmServer, app: ASGIApp, relay_dir: Path) -> None:
        self.server = server
        self.app = app
        self.relay_dir = relay_dir
        self.port: int | None = None
        self.token: str | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            if scope["method"] != "POST":
                raise InvalidInput("POST /-/ui opens the dashboard's listener")
            answer = await self.open(requested_port(await read_body(receive)))
        except RelayError as err:
            await relay_error_response(err)(scope, receive, send)
            return
        body = json.dumps(answer).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def open(self, port: int = 0) -> dict[str, str]:
        """Listen on ``127.0.0.1:port`` (0: any free port) unless listening already;
        returns ``{"url", "token"}``.

        Raises:
            Conflict: ``port`` is in use, or the listener is on another port.
            InvalidInput: the port cannot be bound.
        """
        async with self._lock:
            if self.port is None:
                token = read_token(self.relay_dir)
                sock = bind(HOST, port)[0]
                try:
                    bound: int = sock.getsockname()[1]
                    await self.server.add_listener(sock, Gate(self.app, token, bound))
                except BaseException:
                    sock.close()
                    raise
                self.port, self.token = bound, token
                logging.getLogger("relaybus.warm").info(
                    "relaybus: dashboard on http://%s:%d/", HOST, bound
                )
            elif port not in (0, self.port):
                raise Conflict(
                    f"the dashboard listens on port {self.port} already: use it, or stop "
                    "the warm relay (relaybus daemon stop) to listen on another",
                    port=self.port,
                )
        assert self.token is not None
        return {"url": f"http://{HOST}:{self.port}/", "token": self.token}


async def read_body(receive: Any) -> bytes:
    """The request's body, at most :data:`MAX_BODY` bytes.

    Raises:
        InvalidInput: a longer body.
    """
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidInput(f"the body of POST /-/ui is at most {MAX_BODY} bytes")
        if not message.get("more_body"):
            return body


def requested_port(body: bytes) -> int:
    """The ``port`` of a ``POST /-/ui`` body (``{"port": N}``; empty: 0).

    Raises:
        InvalidInput: not a JSON object, or a port outside 0-65535.
    """
    try:
        request = json.loads(body) if body else {}
    except ValueError:
        request = None
    if not isinstance(request, dict):
        raise InvalidInput('the body of POST /-/ui is a JSON object: {"port": N}')
    port = request.get("port") or 0
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidInput(f"port {port!r} is not a TCP port (0-65535)", field="port")
    return port


def read_token(relay_dir: Path) -> str:
    """The dashboard token of ``relay_dir`` (its :data:`TOKEN_FILE`), made on first use
    (``secrets.token_urlsafe(32)``, in a file only its owner can read)."""
    path = relay_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token
