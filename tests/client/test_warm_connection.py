""":class:`relaybus.client.warm.Connection`, the warm relay's HTTP/1.1 client on a plain
socket, against a real HTTP/1.1 server on a Unix socket (the standard library's
``http.server``): answers with a length, chunked or read to the end, kept-alive
connections reused, a server that closes handled, bad headers refused unsent."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from relaybus.client.warm import Connection, request


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, Server)
        echo = json.dumps(
            {"path": self.path, "workspace": self.headers.get("X-Relaybus-Workspace")}
        ).encode()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (echo[:5], echo[5:]):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nTrailer: x\r\n\r\n")
        elif self.path == "/to-the-end":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(echo)
            self.close_connection = True
        else:
            status = 404 if self.path == "/missing" else 200
            self.send_response(status, "Nope" if status == 404 else None)
            self.send_header("Content-Length", str(len(echo)))
            self.end_headers()
            self.wfile.write(echo)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def setup(self) -> None:
        super().setup()
        server = self.server
        assert isinstance(server, Server)
        with server.lock:
            server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()
        self.connections = 0
        super().__init__(str(path), Handler)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "http.sock")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def test_answers_with_a_length_chunked_or_to_the_end_are_read_whole(
    server: Server, tmp_path: Path
) -> None:
    connection = Connection(tmp_path / "http.sock", timeout=10)
    headers = {"X-Relaybus-Workspace": "team-a"}
    try:
        for path in ("/length", "/chunked", "/to-the-end"):
            answer = connection.request("GET", path, headers=headers)
            assert answer.status == 200
            assert json.loads(answer.body) == {"path": path, "workspace": "team-a"}
        assert not connection.connected  # the last answer closed it
        posted = connection.request("POST", "/echo", body=b'{"a":1}')
        assert (posted.status, posted.body) == (201, b'{"a":1}')
    finally:
        connection.close()
    # one connection for the first two (kept alive), a second after the close
    assert server.connections == 2


def test_error_answers_keep_their_status_and_reason(server: Server, tmp_path: Path) -> None:
    status, body = request(tmp_path / "http.sock", "GET", "/missing")
    assert status == 404 and json.loads(body)["path"] == "/missing"
    connection = Connection(tmp_path / "http.sock", timeout=10)
    try:
        assert connection.request("GET", "/missing").reason == "Nope"
    finally:
        connection.close()


@pytest.mark.parametrize("value", ["two\r\nX-Evil: 1", "ünïcode ✓"])
def test_a_header_a_request_cannot_carry_is_refused_before_anything_is_sent(
    server: Server, tmp_path: Path, value: str
) -> None:
    connection = Connection(tmp_path / "http.sock", timeout=10)
    with pytest.raises(ValueError, match="header cannot carry"):
        connection.request("GET", "/length", headers={"X-Relaybus-Workspace": value})
    assert not connection.connected and server.connections == 0


def test_nobody_listening_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Connection(tmp_path / "none.sock").request("GET", "/")
