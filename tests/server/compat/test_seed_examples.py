"""agent-relay-server's own curl examples, run unchanged against a real ``relaybus serve``.

The examples are the seed's text (``shared/seeds/001_…`` README "API Reference" and
"Integrations And Tasks"; ``003_…`` the Codex skill's send and pair commands). The
seed's diff hides a few of their lines (the event's headers, ``source`` and
``dedupeKey``; the first declared integration's name and token; the skill's ``-d``
line): those are filled in as the README's prose describes them and marked below.

They run through bash with the real curl (``.ci/run`` installs it, like tmux); the
examples that say ``http://localhost:4850`` reach the test's server through a
``.curlrc`` (``connect-to``), so the command lines stay as written. Without curl, the
same command lines are expanded by bash and sent as the same HTTP requests
(:func:`send_as_curl_would`), so the test still checks every route and body.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import HUNG
from tests.server.test_serve_cli import ANNOUNCE, serving, url_of
from tests.support.live import UNUSED_TLS

ADMIN = "seed-admin-token"
#: The seed's AGENT_RELAY_INTEGRATIONS. Reconstructed: the first entry's name, token and
#: scopes (hidden by the seed's diff; its prose: ops alerts go to cap:ops).
SEED_INTEGRATIONS = """[
  {
    "name": "ops-alerts",
    "token": "ops-secret",
    "scopes": ["tasks:create"],
    "targets": ["cap:ops"],
    "channels": ["alerts"],
    "callbackUrl": "https://ops.example/agent-relay/callback"
  },
  {
    "name": "support-desk",
    "token": "support-secret",
    "scopes": ["tasks:create"],
    "targets": ["cap:support"],
    "channels": ["support"]
  }
]"""

# -- the seed's examples -----------------------------------------------------------------

#: README, "API Reference": both token headers.
STATS_BEARER = 'curl -H "Authorization: Bearer $AGENT_RELAY_TOKEN" http://localhost:4850/api/stats'
STATS_TOKEN_HEADER = (
    'curl -H "X-Agent-Relay-Token: $AGENT_RELAY_TOKEN" http://localhost:4850/api/stats'
)
#: README, "Integrations And Tasks". Reconstructed: the two header lines, "source" and
#: "dedupeKey" (the key of the README's routing example).
EVENT = """curl -sS -X POST "$AGENT_RELAY_URL/api/integrations/events" \\
  -H "Authorization: Bearer ops-secret" \\
  -H "Content-Type: application/json" \\
  -d '{
    "source": "grafana",
    "dedupeKey": "prod-api:5xx-rate",
    "title": "prod-api 5xx rate high",
    "body": "5xx rate is above 8% for 5 minutes",
    "target": "cap:ops",
    "channel": "alerts"
  }'"""
#: The Codex skill's send. Reconstructed: its header and -d lines, written as the skill's
#: pair command beside it writes them, with the fields its startup context names.
SEND = """curl -sS -X POST "${AGENT_RELAY_URL:-http://127.0.0.1:4850}/api/messages" \\
  ${AGENT_RELAY_TOKEN:+-H "X-Agent-Relay-Token: ${AGENT_RELAY_TOKEN}"} \\
  -H 'Content-Type: application/json' \\
  -d '{"from":"<this-agent-id>","to":"<target>","subject":"<subject>","body":"<message>"}'"""
#: The Codex skill's pair invite, verbatim.
PAIR = """curl -sS -X POST "${AGENT_RELAY_URL:-http://127.0.0.1:4850}/api/pairs" \\
${AGENT_RELAY_TOKEN:+-H "X-Agent-Relay-Token: ${AGENT_RELAY_TOKEN}"} \\
-H 'Content-Type: application/json' \\
-d '{"from":"<this-agent-id>","target":"codex","objective":"<what to solve together>"}'"""
#: README, "Routing Examples": message bodies and an event body, verbatim.
ROUTED = [
    '{ "to": "macmini2-codex-live-agent-relay-019f4c2a", "body": "Can you check this branch?" }',
    '{ "to": "tag:backend", "body": "Who owns the migration failure?" }',
    '{ "to": "cap:review", "claimable": true, "body": "Review PR #42" }',
]
ROUTED_EVENT = """{
  "target": "cap:ops",
  "channel": "alerts",
  "dedupeKey": "prod-api:5xx-rate",
  "title": "prod-api 5xx rate high"
}"""
#: How a script posts one of the routing bodies (the README's own curl, with $BODY).
POST_BODY = 'curl -sS -X POST "$AGENT_RELAY_URL$ROUTE" -H "X-Agent-Relay-Token: $TOKEN" -d "$BODY"'

# -- running them ------------------------------------------------------------------------

Run = Callable[..., Any]
#: The seed's default address, which some examples spell out.
SEED_ADDRESS = re.compile(r"^http://(?:localhost|127\.0\.0\.1):4850(?=/)")


def send_as_curl_would(argv: list[str], port: int) -> str:
    """The HTTP request of a curl command line (the options these examples use: -X, -H,
    -d and the output flags -s/-S), sent with httpx; returns the response body as curl
    prints it."""
    method: str | None = None
    headers: dict[str, str] = {}
    data: str | None = None
    url = ""
    words = iter(argv)
    for word in words:
        if word in ("-X", "--request"):
            method = next(words)
        elif word in ("-H", "--header"):
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            data = next(words)
        elif not word.startswith("-"):
            url = SEED_ADDRESS.sub(f"http://127.0.0.1:{port}", word)
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # curl's -d
    reply = httpx.request(
        method or ("POST" if data is not None else "GET"),
        url,
        headers=headers,
        content=data,
        timeout=HUNG,
        verify=UNUSED_TLS,
    )
    return reply.text


def runner(way: str, tmp_path: Path, url: str) -> Run:
    """``run(example, **env)``: the example's output as JSON, run by bash with ``env``
    (AGENT_RELAY_URL and AGENT_RELAY_TOKEN are the server's unless given; None unsets)."""
    port = int(url.rsplit(":", 1)[1])
    home = tmp_path / "curl-home"
    home.mkdir()
    (home / ".curlrc").write_text(
        f'connect-to = "localhost:4850:127.0.0.1:{port}"\n'
        f'connect-to = "127.0.0.1:4850:127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    path = shutil.which("bash")
    assert path is not None

    def run(example: str, **env: str | None) -> Any:
        variables = {"AGENT_RELAY_URL": url, "AGENT_RELAY_TOKEN": ADMIN, **env}
        clean = {k: v for k, v in variables.items() if v is not None}
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "CURL_HOME": str(home)}
        script = example
        if way == "http":  # bash expands the line; a function hands curl's argv back
            script = "curl() { printf '%s\\0' \"$@\"; }\n" + example
        done = subprocess.run(
            [path, "-c", script],
            env={**base, **clean},
            capture_output=True,
            encoding="utf-8",
            timeout=HUNG,
            check=True,
        )
        output = done.stdout
        if way == "http":
            output = send_as_curl_would(output.split("\0")[:-1], port)
        return json.loads(output)

    return run


@pytest.fixture(params=["curl", "http"])
def way(request: pytest.FixtureRequest) -> str:
    if request.param == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed (.ci/run installs it): the http way covers it")
    return str(request.param)


@pytest.fixture
def seed_server(tmp_path: Path, database: str | None) -> Iterator[str]:
    """A real ``relaybus serve`` with an admin token and the seed's integrations; its URL."""
    env = {"RELAYBUS_TOKEN": ADMIN, "RELAYBUS_INTEGRATIONS": SEED_INTEGRATIONS}
    with serving(tmp_path, env=env, database=database) as server:
        yield url_of(server.expect(ANNOUNCE))


def register(url: str, agent_id: str, **card: Any) -> str:
    """Register an agent as the seed's plugins do; returns its token."""
    reply = httpx.post(
        f"{url}/api/agents",
        json={"id": agent_id, **card},
        headers={"X-Agent-Relay-Token": ADMIN},
        timeout=HUNG,
        verify=UNUSED_TLS,
    )
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    return token


@pytest.mark.slow
def test_the_seeds_curl_examples_run_unchanged(tmp_path: Path, seed_server: str, way: str) -> None:
    run = runner(way, tmp_path, seed_server)
    mac = "macmini2-codex-live-agent-relay-019f4c2a"
    register(seed_server, mac, tags=["backend", "macmini2"], capabilities=["review"])
    backend = register(seed_server, "backend-agent", tags=["backend"], capabilities=["chat"])
    register(seed_server, "ops-agent", capabilities=["ops"])

    for example in (STATS_BEARER, STATS_TOKEN_HEADER):
        stats = run(example)
        assert stats["agents"]["total"] == 3 and stats["agents"]["online"] == 3
        assert stats["latestId"] == 0

    created = run(EVENT)
    assert created["outcome"] == "created"
    task = created["task"]
    assert (task["title"], task["target"], task["channel"]) == (
        "prod-api 5xx rate high",
        "cap:ops",
        "alerts",
    )
    assert (task["dedupeKey"], task["integration"], task["source"]) == (
        "prod-api:5xx-rate",
        "ops-alerts",
        "grafana",
    )
    assert task["status"] == "open" and task["occurrenceCount"] == 1
    repeated = run(EVENT)
    assert repeated["outcome"] == "repeated"
    assert repeated["task"]["id"] == task["id"] and repeated["task"]["occurrenceCount"] == 2
    # The routing example's event, with the integration's token in the seed's header.
    again = run(POST_BODY, ROUTE="/api/integrations/events", TOKEN="ops-secret", BODY=ROUTED_EVENT)
    assert again["task"]["id"] == task["id"] and again["task"]["occurrenceCount"] == 3

    direct, tagged, claimable = (
        run(POST_BODY, ROUTE="/api/messages", TOKEN=backend, BODY=body) for body in ROUTED
    )
    assert (direct["from"], direct["recipients"]) == ("backend-agent", [mac])
    assert tagged["recipients"] == [mac]  # the sender is not its own recipient
    assert claimable["claimable"] and claimable["recipients"] == [mac]

    send = SEND.replace("<this-agent-id>", "backend-agent").replace("<target>", mac)
    sent = run(send.replace("<subject>", "branch").replace("<message>", "ready to merge"))
    assert (sent["from"], sent["to"], sent["subject"]) == ("backend-agent", mac, "branch")
    # Unset, the URL is the seed's default address (here: the test's server).
    assert run(send, AGENT_RELAY_URL=None)["body"] == "<message>"

    pair = run(PAIR.replace("<this-agent-id>", "backend-agent"))
    assert pair["status"] == 501 and "issue 17" in pair["detail"]

    resolved = run(
        POST_BODY,
        ROUTE="/api/integrations/events",
        TOKEN="ops-secret",
        BODY='{"dedupeKey": "prod-api:5xx-rate", "status": "resolved"}',
    )
    assert resolved["outcome"] == "resolved" and resolved["task"]["status"] == "done"
    stats = run(STATS_BEARER)
    assert stats["latestId"] >= sent["id"] and stats["messages"]["total"] >= 6
    assert (stats["tasks"]["done"], stats["tasks"]["open"]) == (1, 1)  # the event's; PR #42
