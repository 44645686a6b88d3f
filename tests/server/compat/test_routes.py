"""``/api/*`` route by route: tasks, integration events, stats, pairs, and refusals
(every 4xx a problem+json with a reason; nothing the seed's clients send is a 5xx),
on a real server on each dialect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.compat.test_seed_examples import SEED_INTEGRATIONS
from tests.server.conftest import ADMIN, HUNG, problem, unchanged
from tests.support.live import UNUSED_TLS, LiveServer

SEED_HEADER = "X-Agent-Relay-Token"


@pytest.fixture
def seed(secured: LiveServer) -> Iterator[httpx.Client]:
    """The secured server with the seed's two integrations (without a callback URL: no
    callback changes rows behind a test's back) and agents ``lead``, ``ops1`` and
    ``ops2`` (capability ops); a client sending the admin token the seed's way."""
    declared = json.loads(SEED_INTEGRATIONS)
    for entry in declared:
        entry.pop("callbackUrl", None)
    secured.service.declare_integrations(declared)
    with httpx.Client(
        base_url=secured.url, timeout=HUNG, headers={SEED_HEADER: ADMIN}, verify=UNUSED_TLS
    ) as client:
        for agent_id, caps in (("lead", []), ("ops1", ["ops"]), ("ops2", ["ops"])):
            client.post("/api/agents", json={"id": agent_id, "capabilities": caps})
        yield client


def as_token(token: str) -> dict[str, str]:
    return {SEED_HEADER: token}


def test_tasks_are_created_listed_claimed_reported_and_closed(seed: httpx.Client) -> None:
    opened = seed.post(
        "/api/tasks",
        json={
            "title": "Rotate keys",
            "target": "cap:ops",
            "body": "before Friday",
            "metadata": {"ticket": "OPS-7"},
            "externalUrl": "https://tickets.example/OPS-7",
            "dedupeKey": "ops-7",
        },
    )
    assert opened.status_code == 201, opened.text
    task = opened.json()
    assert (task["status"], task["creator"], task["meta"]) == (
        "open",
        "relaybus",
        {"ticket": "OPS-7"},
    )
    assert task["externalUrl"] == "https://tickets.example/OPS-7" and task["messageId"]
    duplicate = seed.post(
        "/api/tasks", json={"title": "x", "target": "cap:ops", "dedupeKey": "ops-7"}
    )
    problem(duplicate, 409)
    by_lead = seed.post("/api/tasks", json={"agentId": "lead", "title": "Review", "target": "ops1"})
    assert by_lead.json()["creator"] == "lead"

    tid = task["id"]
    assert [t["id"] for t in seed.get("/api/tasks", params={"status": "open"}).json()] == [
        by_lead.json()["id"],
        tid,
    ]
    assert [t["id"] for t in seed.get("/api/tasks", params={"agentId": "ops2"}).json()] == [tid]
    claimed = seed.post(f"/api/tasks/{tid}/claim", json={"agentId": "ops1", "leaseMs": 60_000})
    assert claimed.json()["claimedBy"] == "ops1"
    assert claimed.json()["claimExpiresAt"] - claimed.json()["updatedAt"] == 60_000
    problem(seed.post(f"/api/tasks/{tid}/claim", json={"agentId": "ops2"}), 409)
    assert seed.post(f"/api/tasks/{tid}/renew", json={"agentId": "ops1"}).status_code == 200
    released = seed.post(f"/api/tasks/{tid}/release", json={"agentId": "ops1"}).json()
    assert released["status"] == "open"
    seed.post(f"/api/tasks/{tid}/claim", json={"agentId": "ops2"})
    progress = seed.patch(
        f"/api/tasks/{tid}/status", json={"agentId": "ops2", "progress": 50, "note": "half"}
    ).json()
    assert (progress["progress"], progress["progressNote"]) == (50, "half")
    done = seed.patch(
        f"/api/tasks/{tid}/status", json={"agentId": "ops2", "status": "done", "result": "rotated"}
    ).json()
    assert (done["status"], done["result"]) == ("done", "rotated")
    kinds = [e["kind"] for e in seed.get(f"/api/tasks/{tid}/events").json()]
    assert kinds[0] == "created" and kinds[-1] == "done" and "released" in kinds


def test_integration_events_dedupe_resolve_and_stay_within_their_scopes(
    secured: LiveServer, seed: httpx.Client
) -> None:
    event = {"title": "disk full", "target": "cap:ops", "channel": "alerts", "dedupeKey": "disk"}
    ops = as_token("ops-secret")
    first = seed.post("/api/integrations/events", json=event, headers=ops)
    assert first.status_code == 201 and first.json()["outcome"] == "created"
    assert first.json()["task"]["integration"] == "ops-alerts"
    repeat = seed.post(
        "/api/integrations/events", json=event, headers={"Authorization": "Bearer ops-secret"}
    )
    assert repeat.status_code == 200
    assert repeat.json()["task"]["occurrenceCount"] == 2 and repeat.json()["task"]["lastSeenAt"]

    support = as_token("support-secret")
    with unchanged(secured):
        refused = seed.post("/api/integrations/events", json=event, headers=support)
        assert "cap:ops" in problem(refused, 403)["detail"]
        # An integration's token acts on integration routes only.
        problem(seed.get("/api/agents", headers=ops), 403)
        problem(seed.post("/api/messages", json={"to": "ops1", "body": "x"}, headers=ops), 403)

    resolved = seed.post(
        "/api/integrations/events", json={"dedupeKey": "disk", "status": "resolved"}, headers=ops
    )
    assert resolved.json()["outcome"] == "resolved" and resolved.json()["task"]["status"] == "done"
    nothing = seed.post(
        "/api/integrations/events", json={"dedupeKey": "disk", "status": "resolved"}, headers=ops
    )
    assert nothing.status_code == 200 and nothing.json()["outcome"] == "ignored"
    reopened = seed.post("/api/integrations/events", json=event, headers=ops).json()
    assert reopened["outcome"] == "created"
    assert reopened["task"]["id"] != first.json()["task"]["id"]
    by_task = seed.post("/api/tasks", json={"title": "t", "target": "cap:ops"}, headers=ops)
    assert by_task.status_code == 201 and by_task.json()["integration"] == "ops-alerts"


def test_an_integration_with_messages_send_sends_as_itself_to_its_targets_only(
    secured: LiveServer, seed: httpx.Client
) -> None:
    secured.service.add_integration(
        "notifier", scopes=["messages:send"], targets=["cap:ops"], token="notify-secret"
    )
    notify = as_token("notify-secret")

    sent = seed.post("/api/messages", json={"to": "cap:ops", "body": "deploy at 5"}, headers=notify)

    assert sent.status_code == 201, sent.text
    assert (sent.json()["from"], sorted(sent.json()["recipients"])) == (
        "integration:notifier",
        ["ops1", "ops2"],
    )
    with unchanged(secured):
        elsewhere = seed.post("/api/messages", json={"to": "lead", "body": "x"}, headers=notify)
        problem(elsewhere, 403)
        posing = {"from": "lead", "to": "cap:ops", "body": "x"}
        problem(seed.post("/api/messages", json=posing, headers=notify), 403)


def test_stats_count_the_workspace(seed: httpx.Client) -> None:
    sent = seed.post("/api/messages", json={"from": "lead", "to": "cap:ops", "body": "hi"}).json()

    stats = seed.get("/api/stats").json()

    assert stats["agents"] == {"total": 3, "online": 3, "busy": 0, "idle": 0, "offline": 0}
    assert stats["messages"] == {"total": 1, "unread": 2}
    assert stats["latestId"] == sent["id"] and stats["tasks"]["total"] == 0
    assert stats["version"] and stats["uptimeSeconds"] >= 0
    health = httpx.get(f"{seed.base_url}/api/health", timeout=HUNG, verify=UNUSED_TLS)
    assert health.json()["ok"] is True  # no token needed


REFUSALS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/api/messages", b"{not json", 422, "Invalid JSON"),
    ("POST", "/api/messages", {"from": "lead", "to": "ops1"}, 422, "body.body"),
    ("POST", "/api/messages", {"from": "lead", "to": "nobody", "body": "x"}, 404, "nobody"),
    ("POST", "/api/messages", {"to": "ops1", "body": "x"}, 400, "from"),
    (
        "POST",
        "/api/messages",
        {"from": "lead", "to": "ops1", "body": "x", "priority": "?"},
        422,
        "priority",
    ),
    ("POST", "/api/messages/999/claim", {"agentId": "ops1"}, 404, "999"),
    ("PATCH", "/api/messages/1", {}, 422, "readBy"),
    ("PATCH", "/api/agents/lead/status", {"status": "asleep"}, 422, "status"),
    ("POST", "/api/agents/ghost/heartbeat", None, 404, "ghost"),
    ("POST", "/api/agents", {"id": "bad id!"}, 400, "bad id!"),
    ("GET", "/api/agents/ghost", None, 404, "ghost"),
    ("GET", "/api/messages", None, 400, "agentId"),
    ("GET", "/api/messages?agentId=lead&limit=0", None, 400, "limit"),
    ("GET", "/api/tasks/12345", None, 404, "12345"),
    ("PATCH", "/api/tasks/1/status", {"agentId": "ops1", "progress": 101}, 422, "progress"),
    ("POST", "/api/tasks", {"title": "t"}, 422, "target"),
    ("POST", "/api/integrations/events", {"dedupeKey": "k", "status": "closed"}, 422, "status"),
    ("POST", "/api/integrations/events", {"status": "resolved"}, 400, "dedupe"),
    ("GET", "/api/nothing", None, 404, "/api/nothing"),
    ("DELETE", "/api/stats", None, 405, "GET"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    REFUSALS,
    ids=[f"{m} {p} {s}" for m, p, _, s, _ in REFUSALS],
)
def test_every_refusal_is_a_problem_with_a_reason_and_changes_nothing(
    secured: LiveServer,
    seed: httpx.Client,
    method: str,
    path: str,
    body: Any,
    status: int,
    reason: str,
) -> None:
    # Message 1, claimable, and its task 1, so that ids in the paths exist where meant.
    seed.post("/api/messages", json={"from": "lead", "to": "ops1", "body": "x", "claimable": True})
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    with unchanged(secured):
        reply = seed.request(method, path, content=content)
        assert reason in problem(reply, status)["detail"]


def test_a_message_without_a_task_cannot_be_claimed(seed: httpx.Client) -> None:
    plain = seed.post("/api/messages", json={"from": "lead", "to": "ops1", "body": "fyi"}).json()
    refused = seed.post(f"/api/messages/{plain['id']}/claim", json={"agentId": "ops1"})
    assert "not claimable" in problem(refused, 400)["detail"]
    # ops2 did not receive it: the same 404 as a missing message.
    problem(seed.post(f"/api/messages/{plain['id']}/claim", json={"agentId": "ops2"}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/pairs"), ("GET", "/api/pairs"), ("POST", "/api/pairs/p1/accept")],
)
def test_pair_routes_answer_501_naming_the_issue_that_adds_them(
    seed: httpx.Client, method: str, path: str
) -> None:
    reply = seed.request(method, path, json={"from": "lead", "target": "ops1"})
    assert reply.status_code == 501
    assert reply.headers["content-type"] == "application/problem+json"
    assert "issue 17" in reply.json()["detail"]
    refused = httpx.request(method, f"{seed.base_url}{path}", timeout=HUNG, verify=UNUSED_TLS)
    problem(refused, 401)  # without a token: 401 first


def test_the_openapi_document_describes_v1_only(seed: httpx.Client) -> None:
    paths = seed.get("/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/api/")]


#: What PostgreSQL refuses to store (NUL in text, integers past 64 bits) and what no
#: JSON parser should hand on (a lone surrogate), in every kind of field.
ODD: list[tuple[str, str, str | None]] = [
    ("POST", "/api/agents", '{"id": "a\\u0000"}'),
    ("POST", "/api/agents", '{"id": "a", "machine": "m\\u0000", "name": "n\\u0000"}'),
    ("POST", "/api/agents", '{"id": "a", "meta": {"k\\u0000": 1}, "rig": "\\ud800"}'),
    ("POST", "/api/agents", '{"id": "a", "pid": 99999999999999999999}'),
    ("GET", "/api/messages?agentId=a%00b", None),
    ("GET", "/api/messages?agentId=lead&since=99999999999999999999", None),
    ("GET", "/api/agents/a%00b/inbox", None),
    ("PATCH", "/api/agents/lead/status", '{"status": "busy", "epoch": 99999999999999999999}'),
    ("PATCH", "/api/messages/99999999999999999999", '{"readBy": "lead"}'),
    ("PATCH", "/api/messages/1", '{"readBy": "lead\\u0000"}'),
    ("POST", "/api/messages", '{"from": "lead", "to": "ops1", "body": "x\\u0000"}'),
    ("POST", "/api/messages", '{"from": "lead", "to": "ops1\\u0000", "body": "x"}'),
    ("POST", "/api/messages", '{"from": "lead", "to": "ops1", "body": "x", "type": "\\u0000"}'),
    ("POST", "/api/messages", '{"from": "lead", "to": "ops1", "body": "x", "replyTo": -1}'),
    ("POST", "/api/messages/1/claim", '{"agentId": "ops1", "leaseMs": 1e300}'),
    ("POST", "/api/tasks", '{"title": "t\\u0000", "target": "ops1"}'),
    ("POST", "/api/tasks", '{"title": "t", "target": "ops1", "externalUrl": "ftp://x"}'),
    ("POST", "/api/integrations/events", '{"title": "t", "dedupeKey": "k\\u0000"}'),
    ("POST", "/api/integrations/events", '{"title": "t", "source": "\\u0000", "target": "ops1"}'),
    ("GET", "/api/tasks?agentId=%00", None),
    ("GET", "/api/tasks?assignee=%00", None),
    ("POST", "/api/integrations/events", '{"integration": "x\\u0000", "title": "t"}'),
    ("POST", "/api/tasks/1/claim", '{"agentId": "ops1\\u0000"}'),
    ("PATCH", "/api/tasks/1/status", '{"agentId": "\\u0000", "progress": 5}'),
]


@pytest.mark.parametrize(("method", "path", "body"), ODD, ids=[f"{m} {p}" for m, p, _ in ODD])
def test_values_no_database_stores_are_refused_with_a_problem_never_a_500(
    secured: LiveServer, seed: httpx.Client, method: str, path: str, body: str | None
) -> None:
    seed.post("/api/messages", json={"from": "lead", "to": "ops1", "body": "x", "claimable": True})
    with unchanged(secured):
        reply = seed.request(method, path, content=body)
        assert 400 <= reply.status_code < 500, reply.text
        problem(reply, reply.status_code)
