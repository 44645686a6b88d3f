"""Integrations over HTTP, against a real server and a real callback receiver.

An external system posts events with its own token (``POST /v1/integrations/events``);
each becomes a task and a claimable message, repeats of a dedupe key only count, and
every change of the task is posted to the integration's callback URL, signed: the
receiver (:mod:`tests.support.receiver`, uvicorn on loopback) checks each signature
with its own HMAC code. Failing or absent receivers are retried, dead letters are
replayed, every attempt is listed. Integration tokens can do only what their scopes,
targets and channels allow. ``relaybus serve`` declares integrations from
``RELAYBUS_INTEGRATIONS``. Each server test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybus import __version__
from tests.server.conftest import ADMIN, HUNG, bearer, problem, register, unchanged
from tests.server.test_serve_cli import ANNOUNCE, run, serving, url_of
from tests.support.live import UNUSED_TLS, LiveServer, live_server
from tests.support.poll import until
from tests.support.receiver import CallbackReceiver, Received, callback_receiver

#: The seconds before a failed callback's second attempt on the servers here (doubled
#: for each later one): retries come within a second or two instead of minutes.
BACKOFF = 0.2


@contextlib.contextmanager
def relay(
    tmp_path: Path, database: str | None, **config: Any
) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """A server with the admin token :data:`ADMIN` and ``config``, and an admin client."""
    with (
        live_server(tmp_path, admin_token=ADMIN, database=database, **config) as srv,
        client(srv, ADMIN) as admin,
    ):
        yield srv, admin


def client(srv: LiveServer, token: str) -> httpx.Client:
    """A client of ``srv`` with bearer ``token``."""
    return httpx.Client(base_url=srv.url, timeout=HUNG, headers=bearer(token), verify=UNUSED_TLS)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with callback_receiver() as found:
        yield found


def add_integration(
    admin: httpx.Client, name: str, receiver: CallbackReceiver | None = None, **fields: Any
) -> dict[str, Any]:
    """Create integration ``name`` (with ``receiver`` as its callback URL, which then
    learns the signing secret); returns the answer (``integration``, ``token``, ``secret``)."""
    if receiver is not None:
        fields["callback_url"] = receiver.url
    reply = admin.post("/v1/integrations", json={"name": name, **fields})
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    assert created["token"].startswith("rbi_")
    if receiver is not None:
        assert created["secret"].startswith("whsec_")
        receiver.secret = created["secret"]
    return created


def deliveries(admin: httpx.Client, name: str, **params: Any) -> list[dict[str, Any]]:
    reply = admin.get(f"/v1/integrations/{name}/deliveries", params=params)
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()
    return found


def all_delivered(admin: httpx.Client, name: str) -> list[dict[str, Any]]:
    """Integration ``name``'s callbacks if every one is delivered, else nothing."""
    found = deliveries(admin, name)
    return found if all(d["status"] == "delivered" for d in found) else []


def delivered_ids(receiver: CallbackReceiver) -> set[int]:
    return {r.delivery for r in receiver.delivered()}


def by_event(received: list[Received]) -> dict[str, dict[str, Any]]:
    """The callback bodies by event kind (one each, checked)."""
    found = {r.event: r.body for r in received}
    assert len(found) == len(received), [r.event for r in received]
    return found


# -- events in, callbacks out -------------------------------------------------------


def test_an_event_opens_a_claimable_task_and_the_receiver_hears_every_change_signed(
    tmp_path: Path, database: str | None, receiver: CallbackReceiver
) -> None:
    with relay(tmp_path, database, callback_backoff=BACKOFF) as (srv, admin):
        token = add_integration(admin, "alerts", receiver, targets=["cap:ops"])["token"]
        ops = register(admin, "ops-1", capabilities=["ops"])
        event = {
            "source": "grafana",
            "title": "prod-api 5xx rate high",
            "body": "5xx above 8% for 5 minutes",
            "external_url": "https://grafana.example/d/prod-api",
            "metadata": {"service": "prod-api", "value": 0.084},
            "dedupe_key": "prod-api-5xx",
        }
        with client(srv, token) as hook, client(srv, ops) as agent:
            first = hook.post("/v1/integrations/events", json=event)
            inbox = agent.get("/v1/agents/ops-1/inbox").json()
            again = hook.post("/v1/integrations/events", json=event)
            inbox_after = agent.get("/v1/agents/ops-1/inbox").json()
            task_id = first.json()["task"]["id"]
            claimed = agent.post(f"/v1/tasks/{task_id}/claim", json={})
            done = agent.patch(f"/v1/tasks/{task_id}", json={"status": "done", "result": "ok"})
        receiver.wait_for(lambda r: len(delivered_ids(r)) >= 4)
        # The relay records an outcome after the receiver answers: look until it has.
        listed = until(lambda: all_delivered(admin, "alerts"), HUNG)

    assert first.status_code == 201, first.text
    created = first.json()
    assert created["outcome"] == "created"
    task = created["task"]
    assert task["status"] == "open"
    assert task["target"] == "cap:ops"
    assert task["meta"] == event["metadata"]
    assert task["external_url"] == event["external_url"]
    assert task["integration"] == "alerts"
    assert task["source"] == "grafana"
    assert task["dedupe_key"] == "prod-api-5xx"
    assert task["occurrence_count"] == 1
    [message] = inbox
    assert message["id"] == created["message_id"]
    assert message["task_id"] == task_id
    assert message["sender"] == "integration:alerts"
    assert message["meta"] == event["metadata"]
    assert event["external_url"] in message["body"]

    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "repeated"
    assert again.json()["task"]["id"] == task_id
    assert again.json()["task"]["occurrence_count"] == 2
    assert again.json()["message_id"] is None
    assert [m["id"] for m in inbox_after] == [message["id"]]
    assert claimed.status_code == 200, claimed.text
    assert done.status_code == 200, done.text

    received = receiver.delivered()
    assert all(r.valid for r in receiver.received)
    bodies = by_event(received)
    assert set(bodies) == {"task.created", "task.repeated", "task.claimed", "task.updated"}
    for r in received:
        assert r.body["id"] == r.delivery
        assert r.body["event"] == r.event
        assert r.body["integration"] == "alerts"
        assert r.body["workspace"] == "default"
        assert r.body["task"]["id"] == task_id
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"] == f"relaybus/{__version__}"
    snapshot = {kind: body["task"] for kind, body in bodies.items()}
    assert (snapshot["task.created"]["status"], snapshot["task.created"]["occurrence_count"]) == (
        "open",
        1,
    )
    assert snapshot["task.created"]["meta"] == event["metadata"]
    assert (snapshot["task.repeated"]["status"], snapshot["task.repeated"]["occurrence_count"]) == (
        "open",
        2,
    )
    assert snapshot["task.claimed"]["status"] == "claimed"
    assert snapshot["task.claimed"]["assignee"] == "ops-1"
    assert snapshot["task.updated"]["status"] == "done"
    assert snapshot["task.updated"]["result"] == "ok"
    # One callback per change, in the order of the changes, each delivered.
    events = sorted(bodies.values(), key=lambda body: body["id"])
    assert [body["event"] for body in events] == [
        "task.created",
        "task.repeated",
        "task.claimed",
        "task.updated",
    ]
    assert [body["event_id"] for body in events] == sorted(body["event_id"] for body in events)
    assert sorted(d["id"] for d in listed) == sorted(delivered_ids(receiver))
    assert {d["status"] for d in listed} == {"delivered"}


def test_a_resolution_closes_the_task_and_the_next_event_of_its_key_opens_a_new_one(
    tmp_path: Path, database: str | None, receiver: CallbackReceiver
) -> None:
    with relay(tmp_path, database, callback_backoff=BACKOFF) as (srv, admin):
        token = add_integration(admin, "alerts", receiver, targets=["cap:ops"])["token"]
        register(admin, "ops-1", capabilities=["ops"])
        with client(srv, token) as hook:
            opened = hook.post(
                "/v1/integrations/events", json={"title": "disk full", "dedupe_key": "disk"}
            )
            resolved = hook.post(
                "/v1/integrations/events", json={"dedupe_key": "disk", "status": "resolved"}
            )
            nothing = hook.post(
                "/v1/integrations/events", json={"dedupe_key": "disk", "status": "resolved"}
            )
            reopened = hook.post(
                "/v1/integrations/events", json={"title": "disk full", "dedupe_key": "disk"}
            )
        # created, updated (resolved), created again.
        receiver.wait_for(lambda r: len(delivered_ids(r)) >= 3)

    assert (opened.status_code, opened.json()["outcome"]) == (201, "created")
    first = opened.json()["task"]["id"]
    assert (resolved.status_code, resolved.json()["outcome"]) == (200, "resolved")
    assert resolved.json()["task"]["id"] == first
    assert resolved.json()["task"]["status"] == "done"
    assert (nothing.status_code, nothing.json()["outcome"]) == (200, "ignored")
    assert (reopened.status_code, reopened.json()["outcome"]) == (201, "created")
    second = reopened.json()["task"]["id"]
    assert second != first
    assert reopened.json()["task"]["occurrence_count"] == 1
    received = sorted(receiver.delivered(), key=lambda r: r.delivery)
    assert all(r.valid for r in receiver.received)
    assert [(r.event, r.body["task"]["id"], r.body["task"]["status"]) for r in received] == [
        ("task.created", first, "open"),
        ("task.updated", first, "done"),
        ("task.created", second, "open"),
    ]


def test_callbacks_to_a_failing_or_absent_receiver_are_retried_until_it_answers(
    tmp_path: Path, database: str | None, receiver: CallbackReceiver
) -> None:
    receiver.status = 500
    with relay(tmp_path, database, callback_backoff=BACKOFF, callback_timeout=5.0) as (srv, admin):
        token = add_integration(admin, "alerts", receiver, targets=["cap:ops"])["token"]
        register(admin, "ops-1", capabilities=["ops"])
        with client(srv, token) as hook:
            posted = hook.post("/v1/integrations/events", json={"title": "disk full"})
        assert posted.status_code == 201, posted.text
        receiver.wait_for(lambda r: len(r.received) >= 2)
        receiver.stop()

        def refused() -> list[dict[str, Any]]:
            [callback] = deliveries(admin, "alerts")
            return [a for a in callback["attempt_log"] if a["status"] is None and a["error"]]

        assert until(refused, HUNG), "no attempt found the receiver down"
        receiver.status = 200
        receiver.start()
        receiver.wait_for(lambda r: len(r.delivered()) >= 1)
        [callback] = until(lambda: deliveries(admin, "alerts", status="delivered"), HUNG)

    assert all(r.valid for r in receiver.received)
    answers = [r.answered for r in receiver.received]
    assert answers[-1] == 200 and set(answers[:-1]) == {500}
    assert {r.delivery for r in receiver.received} == {callback["id"]}
    log = callback["attempt_log"]
    assert [a["attempt"] for a in log] == list(range(1, len(log) + 1))
    assert callback["attempts"] == len(log)
    assert callback["event"] == "task.created"
    assert callback["delivered_at"] is not None
    assert callback["last_status"] == 200
    # Every attempt the receiver answered is listed with its status; the others failed
    # to connect. Each has a latency, and an error unless it succeeded.
    assert [a["status"] for a in log if a["status"] is not None] == answers
    for attempt in log:
        assert attempt["latency"] is not None and attempt["latency"] >= 0
        assert attempt["runner"]
        if attempt["status"] == 200:
            assert attempt["error"] is None
        elif attempt["status"] == 500:
            assert attempt["error"].startswith("HTTP 500")
        else:
            assert "Connect" in attempt["error"]
    assert log[-1]["status"] == 200


def test_a_dead_callback_is_replayed_on_request_and_arrives(
    tmp_path: Path, database: str | None, receiver: CallbackReceiver
) -> None:
    receiver.status = 500
    with relay(tmp_path, database, callback_backoff=BACKOFF, callback_max_attempts=2) as (
        srv,
        admin,
    ):
        token = add_integration(admin, "alerts", receiver, targets=["cap:ops"])["token"]
        register(admin, "ops-1", capabilities=["ops"])
        with client(srv, token) as hook:
            assert hook.post("/v1/integrations/events", json={"title": "x"}).status_code == 201
        [dead] = until(lambda: deliveries(admin, "alerts", status="dead"), HUNG)
        receiver.status = 200
        replayed = admin.post(f"/v1/integrations/alerts/deliveries/{dead['id']}/replay")
        again = admin.post(f"/v1/integrations/alerts/deliveries/{dead['id']}/replay")
        receiver.wait_for(lambda r: len(r.delivered()) >= 1)
        [callback] = until(lambda: deliveries(admin, "alerts", status="delivered"), HUNG)
        missing = admin.post("/v1/integrations/alerts/deliveries/999999/replay")
        with client(srv, token) as hook:
            refused = hook.post(f"/v1/integrations/alerts/deliveries/{dead['id']}/replay")

    assert dead["attempts"] == 2
    assert [a["status"] for a in dead["attempt_log"]] == [500, 500]
    assert dead["last_status"] == 500
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "pending"
    # A second replay while it is pending: refused (it goes out anyway).
    assert "pending" in problem(again, 409)["detail"]
    assert [r.answered for r in receiver.received] == [500, 500, 200]
    assert {r.delivery for r in receiver.received} == {dead["id"]}
    assert all(r.valid for r in receiver.received)
    assert callback["id"] == dead["id"]
    assert [(a["attempt"], a["status"]) for a in callback["attempt_log"]] == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]
    problem(missing, 404)
    problem(refused, 403)


# -- what an integration token may do ----------------------------------------------


#: Routes an integration token may not call: (method, path, json body).
NOT_FOR_INTEGRATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/agents", None),
    ("POST", "/v1/agents", {"id": "intruder"}),
    ("GET", "/v1/agents/ops-1/inbox", None),
    ("POST", "/v1/messages", {"sender": "ops-1", "to": "ops-1", "body": "forged"}),
    ("GET", "/v1/stream", None),
    ("GET", "/v1/integrations", None),
    ("POST", "/v1/integrations", {"name": "another"}),
    ("POST", "/v1/integrations/alerts/rotate", {}),
    ("DELETE", "/v1/integrations/alerts", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    NOT_FOR_INTEGRATIONS,
    ids=[f"{m} {p} {json.dumps(b)}" for m, p, b in NOT_FOR_INTEGRATIONS],
)
def test_an_integration_token_outside_the_integration_routes_is_403_and_changes_nothing(
    tmp_path: Path, database: str | None, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        scopes = ["tasks:create", "tasks:read", "messages:send", "events:read"]
        token = add_integration(admin, "alerts", scopes=scopes, targets=["*"])["token"]
        register(admin, "ops-1")
        with client(srv, token) as hook, unchanged(srv):
            reply = hook.request(method, path, json=body)

    assert "alerts" in problem(reply, 403)["detail"]


def test_a_missing_scope_is_403_naming_the_scope(tmp_path: Path, database: str | None) -> None:
    with relay(tmp_path, database) as (srv, admin):
        reader = add_integration(admin, "reader", scopes=["tasks:read"], targets=["ops-1"])
        writer = add_integration(admin, "writer", scopes=["tasks:create"], targets=["ops-1"])
        register(admin, "ops-1")
        with client(srv, reader["token"]) as hook, unchanged(srv):
            event = hook.post("/v1/integrations/events", json={"title": "x"})
            task = hook.post("/v1/tasks", json={"title": "x", "target": "ops-1"})
            own = hook.get("/v1/integrations/reader/deliveries")
            message = hook.post("/v1/messages", json={"to": "ops-1", "body": "hello"})
        with client(srv, writer["token"]) as hook, unchanged(srv):
            listing = hook.get("/v1/tasks")
        with client(srv, writer["token"]) as hook:
            allowed = hook.post("/v1/integrations/events", json={"title": "x"})

    for reply, scope in [
        (event, "tasks:create"),
        (task, "tasks:create"),
        (own, "events:read"),
        (message, "messages:send"),
        (listing, "tasks:read"),
    ]:
        refusal = problem(reply, 403)
        assert scope in refusal["detail"], refusal
    assert allowed.status_code == 201, allowed.text


def test_a_target_or_channel_outside_the_allow_lists_is_403_and_changes_nothing(
    tmp_path: Path, database: str | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        token = add_integration(admin, "alerts", targets=["cap:ops"], channels=["alerts"])["token"]
        register(admin, "ops-1", capabilities=["ops"], channels=["alerts", "private"])
        register(admin, "boss", channels=["alerts"])
        with client(srv, token) as hook:
            with unchanged(srv):
                target = hook.post("/v1/integrations/events", json={"title": "x", "target": "boss"})
                channel = hook.post(
                    "/v1/integrations/events", json={"title": "x", "channel": "private"}
                )
                direct = hook.post("/v1/tasks", json={"title": "x", "target": "boss"})
            inside = hook.post("/v1/integrations/events", json={"title": "x"})

    assert "'boss'" in problem(target, 403)["detail"]
    assert "'private'" in problem(channel, 403)["detail"]
    assert "'boss'" in problem(direct, 403)["detail"]
    assert inside.status_code == 201, inside.text
    assert inside.json()["task"]["target"] == "cap:ops"
    assert inside.json()["task"]["channel"] == "alerts"


def test_an_integration_with_messages_send_sends_as_itself_within_its_allow_list(
    tmp_path: Path, database: str | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        token = add_integration(admin, "notifier", scopes=["messages:send"], targets=["ops-1"])[
            "token"
        ]
        ops = register(admin, "ops-1")
        register(admin, "boss")
        with client(srv, token) as hook:
            sent = hook.post("/v1/messages", json={"to": "ops-1", "body": "deploy done"})
            with unchanged(srv):
                outside = hook.post("/v1/messages", json={"to": "boss", "body": "hello"})
                no_event = hook.post("/v1/integrations/events", json={"title": "x"})
        with client(srv, ops) as agent:
            inbox = agent.get("/v1/agents/ops-1/inbox").json()

    assert sent.status_code == 201, sent.text
    assert sent.json()["sender"] == "integration:notifier"
    assert [(m["id"], m["sender"], m["body"]) for m in inbox] == [
        (sent.json()["id"], "integration:notifier", "deploy done")
    ]
    assert "'boss'" in problem(outside, 403)["detail"]
    assert "tasks:create" in problem(no_event, 403)["detail"]


def test_events_over_the_rate_limit_are_429_with_retry_after(
    tmp_path: Path, database: str | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        token = add_integration(admin, "alerts", targets=["ops-1"], rate_limit=3)["token"]
        register(admin, "ops-1")
        with client(srv, token) as hook:
            replies = [
                hook.post("/v1/integrations/events", json={"title": f"alert {n}"}) for n in range(4)
            ]
            with unchanged(srv):
                # The refused event counted nothing either: still refused.
                over = hook.post("/v1/integrations/events", json={"title": "alert 5"})
        other = add_integration(admin, "other", targets=["ops-1"], rate_limit=3)
        with client(srv, other["token"]) as hook:
            own_budget = hook.post("/v1/integrations/events", json={"title": "elsewhere"})

    assert [r.status_code for r in replies[:3]] == [201, 201, 201]
    for refused in (replies[3], over):
        body = problem(refused, 429)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "rate limit" in body["detail"]
    assert own_budget.status_code == 201, own_budget.text


def test_a_revoked_or_rotated_token_is_refused_at_once(
    tmp_path: Path, database: str | None
) -> None:
    event = {"title": "x"}
    with relay(tmp_path, database, token_cache_seconds=3600.0) as (srv, admin):
        old = add_integration(admin, "alerts", targets=["ops-1"])["token"]
        register(admin, "ops-1")
        with client(srv, old) as hook:
            # Used first, so this server has the token cached.
            before = hook.post("/v1/integrations/events", json=event)
            rotated = admin.post("/v1/integrations/alerts/rotate", json={})
            with unchanged(srv):
                after_rotation = hook.post("/v1/integrations/events", json=event)
        new = rotated.json()["token"]
        with client(srv, new) as hook:
            with_new = hook.post("/v1/integrations/events", json=event)
            revoked = admin.delete("/v1/integrations/alerts")
            with unchanged(srv):
                after_revocation = hook.post("/v1/integrations/events", json=event)
        shown = admin.get("/v1/integrations/alerts").json()

    assert before.status_code == 201, before.text
    assert rotated.status_code == 200, rotated.text
    assert new != old and new.startswith("rbi_")
    assert rotated.json()["secret"] is None  # the signing secret stays unless asked
    problem(after_rotation, 401)
    assert with_new.status_code == 201, with_new.text
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    problem(after_revocation, 401)
    assert shown["status"] == "revoked"


def test_post_tasks_opens_a_task_for_the_operator_an_agent_or_an_integration(
    tmp_path: Path, database: str | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        alice = register(admin, "alice")
        bob = register(admin, "bob")
        token = add_integration(admin, "desk", targets=["bob"])["token"]
        task = {"target": "bob", "meta": {"ticket": "OPS-7"}}
        url = "https://tickets.example/OPS-7"
        by_operator = admin.post("/v1/tasks", json={**task, "title": "from the operator"})
        with client(srv, alice) as agent:
            by_agent = agent.post(
                "/v1/tasks", json={**task, "title": "from alice", "external_url": url}
            )
            as_other = agent.post("/v1/tasks", json={**task, "title": "forged", "agent_id": "bob"})
        with client(srv, token) as hook:
            by_integration = hook.post("/v1/tasks", json={**task, "title": "from the desk"})
        with client(srv, bob) as agent:
            inbox = agent.get("/v1/agents/bob/inbox", params={"newest_first": False}).json()
            claimed = agent.post(f"/v1/tasks/{by_operator.json()['id']}/claim", json={})

    for reply in (by_operator, by_agent, by_integration):
        assert reply.status_code == 201, reply.text
        assert reply.json()["status"] == "open"
        assert reply.json()["meta"] == {"ticket": "OPS-7"}
    assert by_operator.json()["creator"] in (None, "relaybus")
    assert by_agent.json()["creator"] == "alice"
    assert by_agent.json()["external_url"] == url
    assert by_integration.json()["integration"] == "desk"
    assert "bob" in problem(as_other, 403)["detail"]
    assert [(m["sender"], m["task_id"]) for m in inbox] == [
        ("relaybus", by_operator.json()["id"]),
        ("alice", by_agent.json()["id"]),
        ("integration:desk", by_integration.json()["id"]),
    ]
    assert all(m["meta"] == {"ticket": "OPS-7"} for m in inbox)
    assert claimed.status_code == 200, claimed.text


def test_an_integration_lists_only_the_tasks_it_raised(
    tmp_path: Path, database: str | None
) -> None:
    with relay(tmp_path, database) as (srv, admin):
        register(admin, "ops-1")
        register(admin, "boss")
        mine = add_integration(admin, "mine", targets=["ops-1"])["token"]
        theirs = add_integration(admin, "theirs", targets=["ops-1"])["token"]
        others = [
            admin.post("/v1/tasks", json={"title": "operator's", "target": "ops-1"}),
            admin.post(
                "/v1/messages",
                json={"sender": "boss", "to": "ops-1", "body": "agent's", "claimable": True},
            ),
        ]
        with client(srv, theirs) as hook:
            others.append(hook.post("/v1/integrations/events", json={"title": "theirs"}))
        with client(srv, mine) as hook:
            raised = [
                hook.post("/v1/integrations/events", json={"title": "mine 1"}).json()["task"],
                hook.post("/v1/tasks", json={"title": "mine 2", "target": "ops-1"}).json(),
            ]
            listed = hook.get("/v1/tasks")
            one = hook.get(f"/v1/tasks/{raised[0]['id']}")
            as_agent = hook.get("/v1/tasks", params={"agent": "ops-1"})
        everything = admin.get("/v1/tasks").json()

    assert listed.status_code == 200, listed.text
    assert sorted(t["id"] for t in listed.json()) == sorted(t["id"] for t in raised)
    assert {t["integration"] for t in listed.json()} == {"mine"}
    assert one.status_code == 200, one.text
    problem(as_agent, 403)
    assert all(reply.status_code == 201 for reply in others), [r.text for r in others]
    assert len(everything) == 5


# -- declared at start: relaybus serve ----------------------------------------------


def test_serve_declares_the_integrations_of_relaybus_integrations(
    tmp_path: Path, database: str | None, receiver: CallbackReceiver
) -> None:
    # agent-relay-server's AGENT_RELAY_INTEGRATIONS shape, plus the signing secret.
    declared = [
        {
            "name": "alertmanager",
            "token": "alertmanager-secret",
            "scopes": ["tasks:create", "tasks:read"],
            "targets": ["cap:ops"],
            "channels": ["alerts"],
            "callbackUrl": receiver.url,
            "secret": "whsec_declared",
        },
        {
            "name": "support-desk",
            "token": "support-secret",
            "scopes": ["tasks:create"],
            "targets": ["cap:support"],
            "channels": ["support"],
        },
    ]
    receiver.secret = "whsec_declared"
    env = {"RELAYBUS_INTEGRATIONS": json.dumps(declared)}
    with serving(tmp_path, env=env, database=database) as server:
        url = url_of(server.expect(ANNOUNCE))
        with httpx.Client(base_url=url, timeout=HUNG, verify=UNUSED_TLS) as admin:
            register(admin, "ops-1", capabilities=["ops"], channels=["alerts"])
            listed = admin.get("/v1/integrations").json()
        with httpx.Client(
            base_url=url, timeout=HUNG, verify=UNUSED_TLS, headers=bearer("alertmanager-secret")
        ) as hook:
            posted = hook.post(
                "/v1/integrations/events", json={"title": "disk full", "dedupe_key": "disk"}
            )
            wrong = hook.post(
                "/v1/integrations/events", json={"title": "x", "target": "cap:support"}
            )
        [callback] = receiver.wait_for(lambda r: r.delivered())
        code = server.stop(signal.SIGTERM)

    assert posted.status_code == 201, posted.text
    assert posted.json()["task"]["channel"] == "alerts"
    problem(wrong, 403)
    assert [(i["name"], i["scopes"], i["targets"], i["channels"]) for i in listed] == [
        (d["name"], d["scopes"], d["targets"], d["channels"]) for d in declared
    ]
    assert listed[0]["callback_url"] == receiver.url
    assert (callback.event, callback.valid) == ("task.created", True)
    assert callback.body["task"]["id"] == posted.json()["task"]["id"]
    assert code == 0
    assert not any("Traceback" in line for line in server.output)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('[{"name": "alertmanager",', "not JSON"),
        ('{"name": "alertmanager", "token": "t"}', "JSON list"),
        ('[{"name": "alertmanager"}]', "'token'"),
    ],
    ids=["bad JSON", "not a list", "no token"],
)
def test_serve_refuses_a_malformed_relaybus_integrations_with_one_line(
    tmp_path: Path, value: str, says: str
) -> None:
    proc = run(tmp_path, "--port", "0", env={"RELAYBUS_INTEGRATIONS": value})
    output, _ = proc.communicate(timeout=HUNG)

    assert proc.returncode != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("relaybus: error: ")
    assert says in lines[0]
    assert "Traceback" not in output
