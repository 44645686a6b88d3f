"""Health, readiness, info, the OpenAPI document and docs, upkeep, unknown routes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from relaybus import __version__
from tests.server.conftest import ADMIN, HUNG, bearer, problem
from tests.support.live import UNUSED_TLS, LiveServer, live_server
from tests.support.pg import drop_database


def test_healthz_and_readyz_answer_without_a_token(secured: LiveServer) -> None:
    assert httpx.get(f"{secured.url}/healthz", verify=UNUSED_TLS).json() == {"status": "ok"}
    assert httpx.get(f"{secured.url}/readyz", verify=UNUSED_TLS).json() == {"status": "ready"}


def test_readyz_is_503_when_the_store_cannot_be_read(tmp_path: Path, database: str | None) -> None:
    with live_server(tmp_path, database=database) as srv:
        store = srv.service.store
        if database is not None:
            drop_database(database)  # every connection to it is cut, and none can open again
        else:
            assert store.path is not None
            store.close()  # drop the pooled connections, so reads open the file anew...
            store.path.parent.rename(tmp_path / "moved")  # ...and find no file
            store.close()  # again: one opened meanwhile (the hub reads on its own) is dropped

        reply = httpx.get(f"{srv.url}/readyz", timeout=HUNG, verify=UNUSED_TLS)
        health = httpx.get(f"{srv.url}/healthz", timeout=HUNG, verify=UNUSED_TLS)

    body = problem(reply, 503)
    assert "cannot be read" in body["detail"]
    assert health.status_code == 200


def test_info_reports_version_backend_uptime_auth_mode_and_caller(
    http: httpx.Client, secured: LiveServer, cast: Callable[..., str], database: str | None
) -> None:
    token = cast("alice")

    open_info = http.get("/v1/info").json()
    agent_info = http.get("/v1/info", headers=bearer(token)).json()
    token_info = httpx.get(
        f"{secured.url}/v1/info", headers=bearer(ADMIN), verify=UNUSED_TLS
    ).json()

    assert open_info["version"] == __version__
    assert open_info["backend"] == ("sqlite" if database is None else "postgresql")
    assert open_info["uptime_seconds"] >= 0
    assert (open_info["auth"], open_info["agent"], open_info["workspace"]) == (
        "open",
        None,
        "default",
    )
    assert agent_info["agent"] == "alice"
    assert token_info["auth"] == "token"


def test_the_openapi_document_describes_every_endpoint_and_its_errors(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()

    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    expected = {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v1/info"),
        ("POST", "/v1/agents"),
        ("GET", "/v1/agents"),
        ("GET", "/v1/agents/{agent_id}"),
        ("PATCH", "/v1/agents/{agent_id}"),
        ("DELETE", "/v1/agents/{agent_id}"),
        ("POST", "/v1/agents/{agent_id}/heartbeat"),
        ("GET", "/v1/agents/{agent_id}/inbox"),
        ("POST", "/v1/agents/{agent_id}/inbox/read"),
        ("GET", "/v1/agents/{agent_id}/inbox/count"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/batch"),
        ("GET", "/v1/messages/{message_id}"),
        ("GET", "/v1/messages/{message_id}/thread"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/{task_id}"),
        ("PATCH", "/v1/tasks/{task_id}"),
        ("GET", "/v1/tasks/{task_id}/history"),
        ("POST", "/v1/tasks/{task_id}/claim"),
        ("POST", "/v1/tasks/{task_id}/renew"),
        ("POST", "/v1/tasks/{task_id}/release"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/last"),
        ("POST", "/v1/sweep"),
        ("POST", "/v1/prune"),
        ("GET", "/v1/stream"),
    }
    assert expected <= operations
    send = document["paths"]["/v1/messages"]["post"]
    assert send["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Message"
    }
    conflict = send["responses"]["409"]["content"]["application/problem+json"]["schema"]
    assert conflict == {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in document["components"]["schemas"]
    assert "Retry-After" in send["responses"]["429"]["headers"]
    epoch = next(p for p in send["parameters"] if p["name"] == "X-Relaybus-Epoch")
    assert epoch["schema"]["type"] == "integer"  # not nullable: a header cannot carry null


def test_the_docs_page_is_served(http: httpx.Client) -> None:
    reply = http.get("/docs")

    assert reply.status_code == 200
    assert re.search(r"<title>.*relaybus", reply.text)


def test_sweep_and_prune_report_what_they_did(http: httpx.Client, cast: Callable[..., str]) -> None:
    cast("alice")
    cast("bob")
    sent = http.post("/v1/messages", json={"sender": "alice", "to": "bob", "body": "old news"})
    assert sent.status_code == 201

    assert http.post("/v1/sweep").json() == {"agents_offline": 0, "tasks_released": 0}
    pruned = http.post("/v1/prune", json={"message_days": 0}).json()
    assert pruned["messages"] == 1
    assert http.post("/v1/prune").status_code == 200  # the body is optional
    problem(http.post("/v1/prune", json={"message_days": -1}), 422)


def test_unknown_paths_and_methods_are_problems(http: httpx.Client) -> None:
    missing = problem(http.get("/v1/nothing-here"), 404)
    wrong_method = problem(http.put("/v1/messages"), 405)

    assert "/v1/nothing-here" in missing["detail"]
    assert "PUT" in wrong_method["detail"]
    assert "POST" in http.put("/v1/messages").headers["allow"]
