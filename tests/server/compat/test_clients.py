"""The seed's clients against ``/api/*``: the calls its Codex sidecar and TypeScript
``RelayClient`` make (``shared/seeds/003_…``, ``relay.ts``), in their order, with
their bodies, on a real server on each dialect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN, HUNG, problem
from tests.support.live import UNUSED_TLS, LiveServer

SEED_HEADER = "X-Agent-Relay-Token"


@pytest.fixture
def seed(secured: LiveServer) -> Iterator[httpx.Client]:
    """A client of the secured server sending the admin token the seed's way."""
    with httpx.Client(
        base_url=secured.url, timeout=HUNG, headers={SEED_HEADER: ADMIN}, verify=UNUSED_TLS
    ) as client:
        yield client


def sidecar_registration(agent_id: str, instance_id: str, **fields: Any) -> dict[str, Any]:
    """``RelayClient.registerAgent``'s payload (the Codex sidecar's)."""
    return {
        "id": agent_id,
        "name": "agent-relay (codex-live @ macmini2)",
        "label": "backend fixer",
        "machine": "macmini2",
        "rig": "codex-live",
        "tags": ["codex", "codex-live", "agent-relay"],
        "capabilities": ["chat", "review"],
        "status": "online",
        "instanceId": instance_id,
        "meta": {
            "client": "codex-live",
            "threadId": "thread-1",
            "cwd": "/work/agent-relay",
            "model": None,
            "approvalMode": "open",
            "channels": ["dev"],
            "profile": None,
        },
        **fields,
    }


def test_a_codex_sidecar_registers_polls_claims_renews_and_marks_read(
    seed: httpx.Client,
) -> None:
    reply = seed.post("/api/agents", json=sidecar_registration("codex-a", "inst-1"))
    assert reply.status_code == 201, reply.text
    card = reply.json()
    session = {"instanceId": "inst-1", "epoch": card["epoch"]}
    assert card["epoch"] == 1 and card["instanceId"] == "inst-1"
    assert (card["name"], card["label"], card["machine"], card["rig"]) == (
        "agent-relay (codex-live @ macmini2)",
        "backend fixer",
        "macmini2",
        "codex-live",
    )
    assert card["channels"] == ["dev"] and card["cwd"] == "/work/agent-relay"
    assert card["status"] == "online" and card["ready"] is True
    seed.post("/api/agents", json={"id": "claude-b", "capabilities": ["review"]})
    seed.post("/api/agents", json={"id": "lead", "capabilities": ["chat"]})

    cursor = seed.get("/api/messages/cursor").json()["latestId"]
    assert seed.post("/api/agents/codex-a/heartbeat", json=session).status_code == 200
    busy = seed.patch("/api/agents/codex-a/status", json={"status": "busy", **session})
    assert busy.json()["status"] == "busy" and busy.json()["ready"] is False
    ready = seed.patch("/api/agents/codex-a/ready", json={"ready": True, **session})
    assert ready.json()["status"] == "busy"  # ready keeps the status; /status sets it
    online = seed.patch("/api/agents/codex-a/status", json={"status": "online", **session})
    assert online.json()["ready"] is True

    work = seed.post(
        "/api/messages",
        json={
            "from": "lead",
            "to": "cap:review",
            "subject": "PR",
            "body": "Review PR #42",
            "claimable": True,
        },
    ).json()
    assert work["claimable"] and sorted(work["recipients"]) == ["claude-b", "codex-a"]
    polled = seed.get("/api/messages", params={"agentId": "codex-a", "since": cursor}).json()
    assert [m["id"] for m in polled] == [work["id"]]
    assert polled[0]["from"] == "lead" and polled[0]["replyTo"] is None

    claimed = seed.post(f"/api/messages/{work['id']}/claim", json={"agentId": "codex-a", **session})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimedBy"] == "codex-a" and claimed.json()["claimExpiresAt"] > 0
    lost = seed.post(f"/api/messages/{work['id']}/claim", json={"agentId": "claude-b"})
    assert problem(lost, 409)["holder"] == "codex-a"  # the seed's client: false, skip it
    renewed = seed.post(
        f"/api/messages/{work['id']}/claim/renew", json={"agentId": "codex-a", **session}
    )
    assert renewed.status_code == 200
    not_held = seed.post(f"/api/messages/{work['id']}/claim/renew", json={"agentId": "claude-b"})
    problem(not_held, 409)

    read = seed.patch(f"/api/messages/{work['id']}", json={"readBy": "codex-a"}).json()
    assert read == {"ok": True, "id": work["id"], "readBy": "codex-a", "marked": 1}
    assert seed.get("/api/agents/codex-a/inbox").json() == []  # unread only
    unread_b = seed.get("/api/agents/claude-b/inbox").json()
    assert [m["id"] for m in unread_b] == [work["id"]]  # one reader hides nothing from another

    reply = seed.post(
        "/api/messages",
        json={"from": "codex-a", "to": "lead", "body": "done", "replyTo": work["id"], **session},
    ).json()
    assert reply["replyTo"] == work["id"] and reply["threadId"] == work["id"]
    thread = seed.get(f"/api/messages/{work['id']}/thread").json()
    assert [m["id"] for m in thread] == [work["id"], reply["id"]]
    assert seed.get("/api/messages/cursor").json() == {"latestId": reply["id"]}
    assert seed.get("/api/agents/lead/unread").json() == {"agentId": "lead", "unread": 1}

    offline = seed.patch("/api/agents/codex-a/status", json={"status": "offline", **session})
    assert offline.json()["status"] == "offline"
    task = seed.get(f"/api/tasks/{work['taskId']}").json()
    assert task["status"] == "open" and task["claimedBy"] is None  # offline releases


def test_a_stale_instance_gets_409_and_a_forgotten_agent_404_on_heartbeat(
    seed: httpx.Client,
) -> None:
    first = seed.post("/api/agents", json=sidecar_registration("codex-a", "inst-1")).json()
    second = seed.post("/api/agents", json=sidecar_registration("codex-a", "inst-2")).json()
    assert second["epoch"] == first["epoch"] + 1
    stale = {"instanceId": "inst-1", "epoch": first["epoch"]}

    assert (
        "stale epoch"
        in problem(seed.post("/api/agents/codex-a/heartbeat", json=stale), 409)["detail"]
    )
    problem(seed.patch("/api/agents/codex-a/status", json={"status": "busy", **stale}), 409)
    problem(seed.patch("/api/agents/codex-a/ready", json={"ready": False, **stale}), 409)
    assert seed.post("/api/agents/codex-a/heartbeat").status_code == 200  # no session: no fence
    assert seed.delete("/api/agents/codex-a").json() == {"ok": True, "id": "codex-a"}
    gone = problem(seed.post("/api/agents/codex-a/heartbeat"), 404)
    assert "codex-a" in gone["detail"]  # the seed's client registers again on 404


def test_the_seed_token_headers_and_agent_tokens_authenticate_like_bearer_tokens(
    secured: LiveServer, seed: httpx.Client
) -> None:
    token = seed.post("/api/agents", json={"id": "alice"}).json()["token"]
    seed.post("/api/agents", json={"id": "bob"})
    url = f"{secured.url}/api/agents"

    def get(headers: dict[str, str]) -> httpx.Response:
        return httpx.get(url, headers=headers, timeout=HUNG, verify=UNUSED_TLS)

    assert get({"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert get({SEED_HEADER: ADMIN}).status_code == 200
    assert get({SEED_HEADER: token}).status_code == 200
    assert SEED_HEADER in problem(get({}), 401)["detail"]
    assert SEED_HEADER in problem(get({SEED_HEADER: ""}), 401)["detail"]
    problem(get({SEED_HEADER: "not-a-token"}), 401)
    problem(get({"Authorization": "Basic abc", SEED_HEADER: ADMIN}), 401)

    as_alice = {SEED_HEADER: token}
    sent = httpx.post(
        f"{secured.url}/api/messages",
        json={"to": "bob", "body": "hi"},
        headers=as_alice,
        timeout=HUNG,
        verify=UNUSED_TLS,
    )
    assert sent.status_code == 201 and sent.json()["from"] == "alice"
    forged = httpx.post(
        f"{secured.url}/api/messages",
        json={"from": "bob", "to": "alice", "body": "hi"},
        headers=as_alice,
        timeout=HUNG,
        verify=UNUSED_TLS,
    )
    assert "acts as 'alice' only" in problem(forged, 403)["detail"]
    peek = httpx.get(
        f"{secured.url}/api/agents/bob/inbox", headers=as_alice, timeout=HUNG, verify=UNUSED_TLS
    )
    problem(peek, 403)


def test_json_bodies_are_read_whatever_their_content_type(seed: httpx.Client) -> None:
    seed.post("/api/agents", content=b'{"id": "alice"}')  # no Content-Type at all
    seed.post(
        "/api/agents",
        content=b'{"id": "bob"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},  # curl's -d
    )
    sent = seed.post(
        "/api/messages",
        content=b'{"from": "alice", "to": "bob", "body": "hi"}',
        headers={"Content-Type": "text/plain"},
    )
    assert sent.status_code == 201 and sent.json()["recipients"] == ["bob"]
    # Fields are camelCase; snake_case is read too, and unknown fields are ignored.
    answered = seed.post(
        "/api/messages",
        json={"from": "bob", "body": "re", "reply_to": sent.json()["id"], "machine": "m1"},
    )
    assert answered.json()["to"] == "alice"


def test_a_sidecar_s_approval_mode_in_its_meta_is_its_agent_s_approval_mode(
    seed: httpx.Client, secured: LiveServer
) -> None:
    guarded = sidecar_registration("codex-g", "inst-1")
    guarded["meta"]["approvalMode"] = "guarded"
    odd = sidecar_registration("codex-x", "inst-1")
    odd["meta"]["approvalMode"] = "yolo"  # not one of the three: no mode

    for body in (sidecar_registration("codex-a", "inst-1"), guarded, odd):
        assert seed.post("/api/agents", json=body).status_code == 201

    modes = {a.id: a.approval.value for a in secured.service.list_agents()}
    assert modes == {"codex-a": "open", "codex-g": "guarded", "codex-x": "open"}
