"""A small TCP proxy on loopback for fault injection between a client and relay servers.

>>> with Proxy([server.url]) as proxy:
...     proxy.drop_reply_to(b"POST /v1/messages ")   # the next one: answer lost
...     Relay.open(url=proxy.url).register("alice").send(...)

Each client connection is forwarded to the first upstream that accepts a connection
(so with several upstreams, a dead one is skipped: a failover load balancer). Like a
real one, it can still pick a replica that is dying: a SIGKILLed process's port accepts
connections until the kernel has closed its last socket, and the request is then
dropped. The proxy records what clients sent (:attr:`Proxy.sent`) and where it went
(:meth:`Proxy.upstreams_of`), closes a client's connection when its upstream closes (a
replica killed mid-request is a dropped connection to the client), and can lose the
answer to a request: it forwards the request, waits for the first bytes of the answer
(so the server has done the work) and resets the client's connection instead of
passing them on.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

#: Seconds any socket operation may block before the proxy gives the connection up.
HUNG = 30.0
_CHUNK = 65536


class Proxy:
    """A running proxy: :attr:`url` to connect to, :attr:`sent` what clients sent."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        self.upstreams = [_address(url) for url in upstreams]
        self.sent: list[bytes] = []
        #: For each chunk of :attr:`sent`, the index in :attr:`upstreams` it went to.
        self.sent_to: list[int] = []
        self.dropped = 0
        self._drops: list[bytes] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        self._spawn(self._accept)

    def drop_reply_to(self, marker: bytes) -> None:
        """Lose the answer to the next request whose bytes contain ``marker`` (e.g. its
        request line): the client's connection is reset once the answer starts."""
        with self._lock:
            self._drops.append(marker)

    def header_values(self, name: str, marker: bytes) -> list[str]:
        """The values of header ``name`` in every request containing ``marker``, in order."""
        pattern = re.compile(rb"\r\n" + re.escape(name.encode("ascii")) + rb": *([^\r]*)", re.I)
        with self._lock:
            chunks = [chunk for chunk in self.sent if marker in chunk]
        return [m.decode("latin-1") for chunk in chunks for m in pattern.findall(chunk)]

    def upstreams_of(self, marker: bytes) -> list[int]:
        """Where every request containing ``marker`` went, in order: its upstream's
        index in the list the proxy was given."""
        with self._lock:
            return [
                to for chunk, to in zip(self.sent, self.sent_to, strict=True) if marker in chunk
            ]

    def close(self) -> None:
        """Stop accepting and end every connection."""
        self._closed = True
        _close(self._listener)  # shutdown first: it wakes the thread blocked in accept()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)
        for thread in self._threads:
            thread.join(HUNG)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside ----------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            found = self._connect()
            if found is None:
                _reset(client)
                continue
            index, upstream = found
            with self._lock:
                self._sockets.update((client, upstream))
            doomed = threading.Event()
            self._spawn(self._requests, client, upstream, index, doomed)
            self._spawn(self._answers, upstream, client, doomed)

    def _connect(self) -> tuple[int, socket.socket] | None:
        for index, address in enumerate(self.upstreams):
            try:
                return index, socket.create_connection(address, timeout=HUNG)
            except OSError:
                continue  # refused: that upstream is down, try the next
        return None

    def _requests(
        self, client: socket.socket, upstream: socket.socket, index: int, doomed: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(_CHUNK):
                with self._lock:
                    self.sent.append(chunk)
                    self.sent_to.append(index)
                    marker = next((m for m in self._drops if m in chunk), None)
                    if marker is not None:
                        self._drops.remove(marker)
                        doomed.set()
                upstream.sendall(chunk)
        _close(upstream, client)

    def _answers(
        self, upstream: socket.socket, client: socket.socket, doomed: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(_CHUNK):
                if doomed.is_set():
                    with self._lock:
                        self.dropped += 1
                    break
                client.sendall(chunk)
        _reset(client)
        _close(upstream)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def _reset(sock: socket.socket) -> None:
    # Linger 0: close with a RST, as a crashed peer's kernel would answer.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(*socks: socket.socket) -> None:
    # Shut down before closing: on Linux, only that wakes another thread blocked in
    # recv() or accept() on the socket.
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
