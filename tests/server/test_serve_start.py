"""What ``relaybus serve`` says when it starts: the store it serves (a password
masked), and one line, nothing else, when its port is taken."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.server.conftest import HUNG
from tests.server.test_serve_cli import ANNOUNCE, run, serving

PASSWORD = "s3cret-pw"


def test_serve_names_the_store_it_serves_with_the_password_masked(
    tmp_path: Path, database: str | None
) -> None:
    if database is not None:
        # The test server trusts local connections, so any password is accepted.
        database = make_url(database).set(password=PASSWORD).render_as_string(hide_password=False)
    with serving(tmp_path, database=database) as server:
        server.expect(ANNOUNCE)
        line = server.expect("relaybus: store ")
        assert server.stop() == 0

    if database is None:
        assert line == f"relaybus: store {tmp_path / '.relay' / 'relay.db'} (SQLite)"
    else:
        name = make_url(database).database
        assert line.startswith("relaybus: store postgresql")
        assert f"/{name}" in line and ":***@" in line
        assert PASSWORD not in "\n".join(server.output)


def test_serve_on_a_busy_port_says_so_in_one_line_and_opens_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run(tmp_path, "--port", str(port))
        out, _ = proc.communicate(timeout=HUNG)

    assert proc.returncode != 0
    assert out.splitlines() == [
        f"relaybus: error: port {port} is in use (127.0.0.1:{port}: address already in use): "
        "choose another with --port"
    ]
    assert not (tmp_path / ".relay").exists()  # refused before the store was opened
