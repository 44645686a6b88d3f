"""``relaybus ui``: the warm local relay of a project serves the dashboard on 127.0.0.1,
behind a token, for as long as it runs.

Real ``relaybus`` processes in a temporary project (a ``.git`` folder: the relay is
found like git) with the warm relay on for those children only (the suite turns it
off), a real relay on its socket and its loopback listener, httpx and a real Chromium
as the clients. Every test stops the relays it started, by pid, and waits until they
are gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from relaybus.client import warm
from tests.client.test_warm import alive, wait_gone
from tests.support.env import clean_environ
from tests.support.live import UNUSED_TLS

#: Generous: a command starting a relay on a loaded 2-core machine.
CALL_TIMEOUT = 60.0


@dataclass
class Project:
    """A repository with its relay folder, and the warm relays its commands started."""

    root: Path
    env: dict[str, str]
    pids: set[int] = field(default_factory=set)

    @property
    def relay_dir(self) -> Path:
        return self.root / ".relay"

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``relaybus ARGS`` in the project, as a separate process; notes the warm relay
        that serves it afterwards."""
        done = subprocess.run(
            [sys.executable, "-m", "relaybus", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )
        info = warm.probe(self.relay_dir) if self.relay_dir.exists() else None
        if info is not None and info.pid is not None:
            self.pids.add(info.pid)
        return done

    def ui(self, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
        """``relaybus ui --no-open --json ARGS``'s answer: ``{url, token}``."""
        done = self.run("ui", "--no-open", "--json", *args, env=env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        answer: dict[str, str] = json.loads(done.stdout)
        return answer

    def relay_pid(self) -> int:
        info = warm.probe(self.relay_dir)
        assert info is not None and info.pid is not None, "no warm relay answers"
        return info.pid


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    env = clean_environ()
    env.pop("RELAYBUS_DAEMON", None)  # the warm relay on, for these children only
    project = Project(root, env)
    try:
        yield project
    finally:
        for pid in project.pids:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
            wait_gone(pid)


def client(answer: dict[str, str], token: str | None = None) -> httpx.Client:
    """An HTTP client of the dashboard's listener, sending ``token`` when given."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=answer["url"], headers=headers, verify=UNUSED_TLS, timeout=30)


def test_ui_serves_the_page_on_loopback_and_the_api_only_with_its_token(project: Project) -> None:
    answer = project.ui()
    url = urlsplit(answer["url"])
    assert url.scheme == "http" and url.hostname == "127.0.0.1" and url.path == "/"
    assert len(answer["token"]) >= 32

    with client(answer) as anonymous:
        page = anonymous.get("/")
        assets = [anonymous.get(path) for path in ("/ui/app.js", "/docs", "/openapi.json")]
        refused = anonymous.get("/v1/agents")
        metrics = anonymous.get("/metrics")
    assert page.status_code == 200 and "<title>relaybus</title>" in page.text
    assert [a.status_code for a in assets] == [200, 200, 200]
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "relaybus ui" in refused.json()["detail"]
    assert metrics.status_code == 401

    with client(answer, "not-the-token") as stranger:
        assert stranger.get("/v1/agents").status_code == 401
    with client(answer, answer["token"]) as admin:
        agents = admin.get("/v1/agents")
        info = admin.get("/v1/info")
    assert agents.status_code == 200 and agents.json() == []
    assert info.json()["agent"] is None  # admin, as on the relay's socket

    token_file = project.relay_dir / "ui.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_another_host_name_is_refused_dns_rebinding(project: Project) -> None:
    answer = project.ui()
    port = urlsplit(answer["url"]).port
    with client(answer, answer["token"]) as admin:
        by_name = admin.get("/v1/agents", headers={"Host": f"localhost:{port}"})
        rebound = admin.get("/v1/agents", headers={"Host": f"attacker.example:{port}"})
        page = admin.get("/", headers={"Host": "attacker.example"})
    assert by_name.status_code == 200
    assert rebound.status_code == 421 and page.status_code == 421
    assert rebound.headers["content-type"] == "application/problem+json"


def test_the_socket_only_route_is_not_served_over_tcp(project: Project) -> None:
    answer = project.ui()
    with client(answer, answer["token"]) as admin:
        over_tcp = admin.post("/-/ui", json={"port": 0})
    with client(answer) as anonymous:
        anonymous_tcp = anonymous.post("/-/ui", json={"port": 0})
    assert over_tcp.status_code == 404 and "token" not in over_tcp.json()
    assert anonymous_tcp.status_code == 401


def test_an_agent_token_acts_as_that_agent_only(project: Project) -> None:
    answer = project.ui()
    with client(answer, answer["token"]) as admin:
        alice = admin.post("/v1/agents", json={"id": "alice"}).json()["token"]
        admin.post("/v1/agents", json={"id": "bob"})
        sent = admin.post("/v1/messages", json={"sender": "bob", "to": "alice", "body": "hi"})
    assert sent.status_code == 201, sent.text
    with client(answer, alice) as as_alice:
        me = as_alice.get("/v1/info").json()
        inbox = as_alice.get("/v1/agents/alice/inbox")
        others = as_alice.get("/v1/agents/bob/inbox")
    assert me["agent"] == "alice"
    assert [m["body"] for m in inbox.json()] == ["hi"]
    assert others.status_code == 403


def test_a_websocket_over_loopback_needs_the_token_in_its_header(project: Project) -> None:
    answer = project.ui()
    url = answer["url"].replace("http://", "ws://") + "v1/ws"
    with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=CALL_TIMEOUT):
        pass
    assert refused.value.response.status_code == 401
    # Not from the query: over TCP only the Authorization header says who calls (a
    # query is written to the relay's access log).
    query = f"{url}?token={answer['token']}"
    with pytest.raises(InvalidStatus) as in_query, connect(query, open_timeout=CALL_TIMEOUT):
        pass
    assert in_query.value.response.status_code == 401
    header = {"Authorization": f"Bearer {answer['token']}"}
    with connect(url, additional_headers=header, open_timeout=CALL_TIMEOUT) as admin:
        ready = json.loads(admin.recv(timeout=CALL_TIMEOUT))
    assert ready["type"] == "ready"


def test_a_second_ui_reuses_the_listener_and_imports_no_server_stack(project: Project) -> None:
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = project.ui("--port", str(port))
    assert urlsplit(first["url"]).port == port
    pid = project.relay_pid()

    second = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "relaybus", "ui", "--no-open"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.strip() == f"{first['url']}#token={first['token']}"
    assert project.relay_pid() == pid
    imported = {
        line.rpartition("|")[2].strip()
        for line in second.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {"sqlalchemy", "pydantic", "asyncio", "http.client", "relaybus.server"}
    assert imported and not heavy & imported

    moved = project.run("ui", "--no-open", "--port", str(port + 1 if port < 65535 else port - 1))
    assert moved.returncode != 0
    assert moved.stderr.startswith("relaybus: error: the dashboard listens on port")
    assert len(moved.stderr.splitlines()) == 1


def test_an_open_stream_keeps_the_relay_and_it_idles_out_once_closed(project: Project) -> None:
    idle = {"RELAYBUS_DAEMON_IDLE_SECONDS": "2", "RELAYBUS_SSE_HEARTBEAT_SECONDS": "0.2"}
    answer = project.ui(env=idle)
    pid = project.relay_pid()
    with (
        client(answer, answer["token"]) as admin,
        admin.stream("GET", "/v1/stream", headers={"Accept": "text/event-stream"}) as stream,
    ):
        assert stream.status_code == 200
        opened = time.monotonic()
        pings = 0
        for line in stream.iter_lines():  # waits on the relay's pings, not on a clock
            pings += line.startswith(":")
            if pings >= 5 and time.monotonic() - opened > 3 * 2:
                break
        assert alive(pid) and project.relay_pid() == pid  # three idle times later
    wait_gone(pid)  # the stream closed: idle, it exits
    assert "idle for 2s: exiting" in (project.relay_dir / "relay.log").read_text(encoding="utf-8")


def test_stopping_the_relay_ends_the_dashboards_stream_and_closes_its_port(
    project: Project,
) -> None:
    answer = project.ui()
    pid = project.relay_pid()
    with (
        client(answer, answer["token"]) as admin,
        admin.stream("GET", "/v1/stream", headers={"Accept": "text/event-stream"}) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines).startswith("event: ready")
        stopped = project.run("daemon", "stop")
        assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stderr
        list(lines)  # the relay ends the stream: it does not hang
    wait_gone(pid)
    with pytest.raises(httpx.ConnectError), client(answer) as anonymous:
        anonymous.get("/")


def test_without_the_warm_relay_ui_says_to_serve(project: Project) -> None:
    done = project.run("ui", "--no-open", env={"RELAYBUS_DAEMON": "0"})
    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "relaybus serve" in done.stderr
    assert not project.relay_dir.exists() or warm.probe(project.relay_dir) is None


def test_with_a_relay_server_ui_opens_that_servers_page(project: Project) -> None:
    server = {"RELAYBUS_URL": "http://127.0.0.1:4850", "RELAYBUS_TOKEN": "secret"}
    printed = project.run("ui", "--no-open", env=server)
    as_json = project.run("ui", "--no-open", "--json", env=server)
    without_token = project.run("ui", "--no-open", env={"RELAYBUS_URL": server["RELAYBUS_URL"]})
    assert printed.stdout.strip() == "http://127.0.0.1:4850/#token=secret"
    assert json.loads(as_json.stdout) == {"url": "http://127.0.0.1:4850/", "token": "secret"}
    assert without_token.stdout.strip() == "http://127.0.0.1:4850/"
    assert not project.relay_dir.exists()  # no warm relay, no store


def test_ui_opens_the_browser_signed_in_and_the_page_shows_an_agent_registered_live(
    project: Project, page: Any, tmp_path: Path
) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$*" > {opened}\n', encoding="utf-8")
    browser.chmod(0o700)

    done = project.run("ui", env={"BROWSER": f"{browser} %s"})  # webbrowser runs it

    assert done.returncode == 0, done.stderr
    assert "opened in your browser" in done.stdout
    token = (project.relay_dir / "ui.token").read_text(encoding="utf-8").strip()
    given = opened.read_text(encoding="utf-8")
    # The browser's command line, which every user can read, has no token: a page in
    # the relay folder, as private as the token, sends it on.
    assert given == (project.relay_dir / "ui.html").as_uri()
    assert token not in given and token not in done.stdout
    assert stat.S_IMODE((project.relay_dir / "ui.html").stat().st_mode) == 0o600

    page.route(given, lambda route: route.continue_())  # the file, before ``offline``
    page.goto(given)
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert page.url.startswith("http://127.0.0.1:") and "token" not in page.url
    assert page.get_by_test_id("me").inner_text().startswith("admin")

    registered = project.run("register", "reviewer-1", "--tag", "review", "--label", "Reviews PRs")
    assert registered.returncode == 0, registered.stderr
    row = page.locator("[data-agent='reviewer-1']")
    row.wait_for()
    assert "Reviews PRs" in row.inner_text()


def test_the_page_without_the_token_asks_for_one(project: Project, page: Any) -> None:
    answer = project.ui()
    page.goto(answer["url"])
    page.get_by_role("dialog").wait_for()
    page.get_by_label("Token").fill(answer["token"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("status").filter(has_text="live").wait_for()
