"""Auth: the admin token, agent tokens, open mode, and every refusal (401, 403)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN, as_agent, bearer, problem, register, unchanged
from tests.support.live import UNUSED_TLS, LiveServer


@pytest.fixture
def tokens(admin: httpx.Client) -> dict[str, str]:
    return {name: register(admin, name) for name in ("alice", "bob")}


@pytest.fixture
def task_id(admin: httpx.Client, tokens: dict[str, str]) -> int:
    """A task bob holds, offered to bob by alice; bob also has a message."""
    sent = admin.post(
        "/v1/messages", json={"sender": "alice", "to": "bob", "body": "x", "claimable": True}
    )
    found: int = sent.json()["task_id"]
    claimed = admin.post(f"/v1/tasks/{found}/claim", json={"agent_id": "bob"})
    assert claimed.status_code == 200, claimed.text
    return found


#: Requests that act as bob: (method, path, json body); ``{task}`` is the task id.
ACTING_AS_BOB: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/agents", {"id": "bob"}),
    ("PATCH", "/v1/agents/bob", {"label": "hijacked"}),
    ("POST", "/v1/agents/bob/heartbeat", None),
    ("DELETE", "/v1/agents/bob", None),
    ("POST", "/v1/messages", {"sender": "bob", "to": "alice", "body": "forged"}),
    ("POST", "/v1/messages/batch", {"sender": "bob", "messages": [{"to": "alice", "body": "f"}]}),
    ("GET", "/v1/agents/bob/inbox", None),
    ("POST", "/v1/agents/bob/inbox/read", {"up_to": 1000}),
    ("GET", "/v1/agents/bob/inbox/count", None),
    ("POST", "/v1/tasks/{task}/claim", {"agent_id": "bob"}),
    ("POST", "/v1/tasks/{task}/renew", {"agent_id": "bob"}),
    ("PATCH", "/v1/tasks/{task}", {"agent_id": "bob", "progress": 10}),
    ("POST", "/v1/tasks/{task}/release", {"agent_id": "bob"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ACTING_AS_BOB, ids=[f"{m} {p}" for m, p, _ in ACTING_AS_BOB]
)
def test_an_agent_token_acting_as_another_agent_is_403_and_changes_nothing(
    secured: LiveServer,
    admin: httpx.Client,
    tokens: dict[str, str],
    task_id: int,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    with as_agent(admin, tokens["alice"]) as alice, unchanged(secured):
        reply = alice.request(method, path.format(task=task_id), json=body)

    refusal = problem(reply, 403)
    assert "alice" in refusal["detail"]


def test_the_same_requests_as_the_agent_itself_are_allowed(
    admin: httpx.Client, tokens: dict[str, str], task_id: int
) -> None:
    last_the_delete = sorted(ACTING_AS_BOB, key=lambda request: request[0] == "DELETE")
    with as_agent(admin, tokens["bob"]) as bob:
        for method, path, body in last_the_delete:
            reply = bob.request(method, path.format(task=task_id), json=body)
            assert reply.status_code < 300, (method, path, reply.text)
            if path == "/v1/agents":
                bob.headers.update(bearer(reply.json()["token"]))  # the new token


@pytest.mark.parametrize("path", ["/v1/sweep", "/v1/prune"])
def test_admin_only_endpoints_refuse_agent_tokens(
    secured: LiveServer, admin: httpx.Client, tokens: dict[str, str], path: str
) -> None:
    with as_agent(admin, tokens["alice"]) as alice, unchanged(secured):
        body = problem(alice.post(path), 403)
    assert "admin" in body["detail"]
    assert admin.post(path).status_code == 200


def test_an_agent_token_stays_in_its_workspace(
    secured: LiveServer, admin: httpx.Client, tokens: dict[str, str]
) -> None:
    with as_agent(admin, tokens["alice"]) as alice:
        problem(alice.get("/v1/agents", headers={"X-Relaybus-Workspace": "other"}), 403)
        same = alice.get("/v1/agents", headers={"X-Relaybus-Workspace": "default"})
    assert same.status_code == 200


def test_workspaces_are_separate_and_chosen_by_header_for_admin(
    admin: httpx.Client, tokens: dict[str, str]
) -> None:
    other = {"X-Relaybus-Workspace": "team-2"}
    carol = admin.post("/v1/agents", json={"id": "carol"}, headers=other).json()

    assert carol["agent"]["workspace"] == "team-2"
    assert [a["id"] for a in admin.get("/v1/agents").json()] == ["alice", "bob"]
    assert [a["id"] for a in admin.get("/v1/agents", headers=other).json()] == ["carol"]
    with as_agent(admin, carol["token"]) as as_carol:
        assert [a["id"] for a in as_carol.get("/v1/agents").json()] == ["carol"]
        problem(as_carol.get("/v1/agents/alice"), 404)
    problem(admin.get("/v1/agents", headers={"X-Relaybus-Workspace": "bad name"}), 422)


def test_no_token_on_a_secured_server_is_401_with_www_authenticate(
    secured: LiveServer, tokens: dict[str, str]
) -> None:
    reply = httpx.get(f"{secured.url}/v1/agents", verify=UNUSED_TLS)

    problem(reply, 401)
    assert reply.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer rb_not-a-real-token", "Basic YWxpY2U6c2VjcmV0", "Bearer", f"Token {ADMIN}"],
    ids=["unknown", "basic", "empty", "other-scheme"],
)
def test_bad_credentials_are_401_on_a_secured_server(secured: LiveServer, header: str) -> None:
    reply = httpx.get(
        f"{secured.url}/v1/agents", headers={"Authorization": header}, verify=UNUSED_TLS
    )

    problem(reply, 401)
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_token_is_401_even_in_open_mode(http: httpx.Client) -> None:
    problem(http.get("/v1/agents", headers=bearer("rb_unknown")), 401)
    assert http.get("/v1/agents").status_code == 200  # no token at all: open mode is admin


def test_the_admin_token_acts_as_anyone(admin: httpx.Client, tokens: dict[str, str]) -> None:
    sent = admin.post("/v1/messages", json={"sender": "bob", "to": "alice", "body": "as bob"})

    assert sent.status_code == 201
    assert admin.get("/v1/agents/alice/inbox").json()[0]["body"] == "as bob"


def test_a_revoked_token_is_401(
    secured: LiveServer, admin: httpx.Client, tokens: dict[str, str]
) -> None:
    with as_agent(admin, tokens["alice"]) as alice:
        assert alice.get("/v1/agents").status_code == 200
        assert admin.delete("/v1/agents/alice").status_code == 204

        problem(alice.get("/v1/agents"), 401)


def test_a_send_with_an_agent_token_into_another_workspace_is_403_cached_or_not(
    secured: LiveServer, admin: httpx.Client, tokens: dict[str, str]
) -> None:
    # The first request looks the token up in the store, the next ones find it cached
    # (the send route resolves a cached token on the event loop): the same answers.
    send = {"sender": "alice", "to": "bob", "body": "across"}
    other = {"X-Relaybus-Workspace": "other"}
    with as_agent(admin, tokens["alice"]) as alice, unchanged(secured):
        refusals = [problem(alice.post("/v1/messages", json=send, headers=other), 403)]
        refusals.append(problem(alice.post("/v1/messages", json=send, headers=other), 403))
    assert refusals[0] == refusals[1]
    with as_agent(admin, tokens["alice"]) as alice:
        sent = [alice.post("/v1/messages", json=send) for _ in range(2)]
    assert [reply.status_code for reply in sent] == [201, 201]
