"""A real relay server for tests: uvicorn on a free loopback port, in a thread.

>>> with live_server(tmp_path) as srv:
...     httpx.get(f"{srv.url}/healthz")

The server runs the real app (:func:`relaybus.server.create_app`) on a real
socket, so streams (SSE, WebSocket) and long-polls behave as in production;
httpx's ``ASGITransport`` would buffer whole responses. The store is a SQLite
file under ``tmp_path`` (or ``database=`` for PostgreSQL). ``stop()`` and
``start()`` restart the server on the same port, for reconnect tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from relaybus.server import create_app
from relaybus.server.run import end_live_responses
from relaybus.service import Service
from relaybus.settings import Settings
from relaybus.store import open_store
from tests.support.template import seed_sqlite

#: Seconds to wait for the server to start or stop before calling it hung.
HUNG = 30.0
#: Seconds between checks while a stopping server drains its connections.
DRAIN_POLL = 0.005
#: The TLS settings for test clients of these servers (httpx's ``verify=``). The servers speak
#: plain HTTP, so it is never used; given, it spares each client httpx's default, a new
#: context that loads the CA bundle (~30 ms of CPU a client, and the tests make hundreds).
UNUSED_TLS = ssl.create_default_context()


class _Server(uvicorn.Server):
    """uvicorn's server, telling the test thread when it listens, and quick to stop.

    uvicorn checks ``should_exit`` every 0.1 s and pauses 0.1 s at the start of its
    shutdown, then polls every 0.1 s: about 0.2 s a stop, and the suites stop a
    server in every test (twice, once per dialect). Here :meth:`exit_soon` wakes
    the main loop at once and :meth:`shutdown` takes uvicorn's steps, polling
    every :data:`DRAIN_POLL` seconds instead.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self.ready.set()

    def exit_soon(self) -> None:
        """Ask the server to stop (from any thread); it starts its shutdown at once."""
        self.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._stopping.set)

    async def main_loop(self) -> None:
        # uvicorn's loop, waiting on the stop request instead of sleeping 0.1 s; every
        # turn (at most a second) counts as its once-a-second tick (the Date header).
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await end_live_responses(self.config.app)  # as `relaybus serve` does
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            await asyncio.wait_for(self._drain(), self.config.timeout_graceful_shutdown)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        await self.lifespan.shutdown()

    async def _drain(self) -> None:
        """Wait for open connections and their tasks to end (as uvicorn does)."""
        while self.server_state.connections or self.server_state.tasks:
            await asyncio.sleep(DRAIN_POLL)
        for server in self.servers:
            await server.wait_closed()


class LiveServer:
    """A running relay server: ``url``, and the ``service``/``app`` behind it."""

    def __init__(self, service: Service, config: Settings) -> None:
        self.service = service
        self.config = config
        self.port = config.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.app: Any = None
        self._running: ThreadedServer | None = None

    def start(self) -> None:
        """Start (or restart) the server on :attr:`port`; returns once it listens.

        Raises:
            RuntimeError: the server did not start within :data:`HUNG` seconds.
        """
        self.app = create_app(self.service, self.config)
        self._running = ThreadedServer.start(
            self.app,
            self.port,
            "live-server",
            backlog=512,
            lifespan="on",
            ws_ping_interval=None,
            ws_per_message_deflate=False,
        )

    def stop(self) -> None:
        """Shut the server down (open streams are closed) and wait for it."""
        if self._running is not None:
            self._running.stop()
            self._running = None


class ThreadedServer:
    """A uvicorn :class:`_Server` serving an ASGI app in a thread of the test process,
    on a loopback socket of its own (the relay of :class:`LiveServer`, the callback
    receiver of :mod:`tests.support.receiver`)."""

    def __init__(self, server: _Server, thread: threading.Thread, sock: socket.socket) -> None:
        self.server, self.thread, self.socket = server, thread, sock

    @classmethod
    def start(
        cls, app: Any, port: int, name: str, *, backlog: int = 128, **config: Any
    ) -> ThreadedServer:
        """Serve ``app`` on 127.0.0.1:``port``; returns once it listens.

        Raises:
            RuntimeError: it did not start within :data:`HUNG` seconds.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(backlog)
        server = _Server(
            uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, **config)
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )
        thread.start()
        if not server.ready.wait(HUNG) or not server.started:
            server.exit_soon()
            thread.join(HUNG)
            sock.close()
            raise RuntimeError(f"{name} did not start")
        return cls(server, thread, sock)

    def stop(self) -> None:
        """Stop the server and wait for its thread.

        Raises:
            RuntimeError: it did not stop within :data:`HUNG` seconds.
        """
        self.server.exit_soon()
        self.thread.join(HUNG)
        if self.thread.is_alive():
            raise RuntimeError(f"{self.thread.name} did not stop")
        self.socket.close()


def server_settings(base: Settings, **fields: Any) -> Settings:
    """``base`` for a test server: loopback on a free port and, unless ``fields`` ask
    for them, no background sweeps or prunes (a test moves its clock itself)."""
    defaults = {"host": "127.0.0.1", "port": free_port(), "sweep_interval": 0.0}
    return base.model_copy(update={**defaults, "prune_interval": 0.0, **fields})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def live_server(
    tmp_path: Path,
    *,
    admin_token: str | None = None,
    database: str | None = None,
    settings: Settings | None = None,
    **config: Any,
) -> Iterator[LiveServer]:
    """Run a relay server for the duration of the block.

    Args:
        tmp_path: where the SQLite store lives (``tmp_path/.relay``).
        admin_token: the server's admin token; ``None`` is open loopback mode.
        database: a database URL instead of the SQLite file (e.g. PostgreSQL).
        settings: relay settings (limits, TTLs); ``dir``/``database`` are set here.
        config: further :class:`~relaybus.settings.Settings` fields for the server
            (see :func:`server_settings`).
    """
    base = settings or Settings()
    update = {"dir": tmp_path / ".relay", "database": database, "token": admin_token}
    base = server_settings(base.model_copy(update=update), **config)
    if database is None:
        seed_sqlite(tmp_path / ".relay" / "relay.db")  # as migrated by an earlier run
    store = open_store(base)
    try:
        service = Service(store)
        server = LiveServer(service, base)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        store.close()
