"""``/v1/pairs``: invite, accept, reject, hang up, pair messages and reads over HTTP, as
agent tokens and as admin; problems for refusals; racing invites through a real server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from tests.server.conftest import ADMIN, as_agent, bearer, problem, register, unchanged
from tests.support.live import LiveServer


def test_a_pair_session_over_http(http: httpx.Client, cast: Callable[..., str]) -> None:
    alice, bob = cast("alice"), cast("bob")

    with as_agent(http, alice) as a, as_agent(http, bob) as b:
        invited = a.post("/v1/pairs", json={"target": "bob", "objective": "fix CI"})
        assert invited.status_code == 201, invited.text
        pair = invited.json()
        path = f"/v1/pairs/{pair['id']}"
        invite = b.get("/v1/agents/bob/inbox").json()
        accepted = b.post(f"{path}/accept", json={})
        said = a.post(f"{path}/messages", json={"body": "I take the parser"})
        heard = b.get("/v1/agents/bob/inbox").json()
        mine = b.get("/v1/pairs").json()
        ended = a.post(f"{path}/hangup", json={})
        late = b.post(f"{path}/messages", json={"body": "wait"})

    assert pair["status"] == "pending" and pair["inviter"] == "alice"
    assert [m["meta"]["pair"] for m in invite] == [pair["id"]]
    assert accepted.json()["status"] == "active"
    assert said.status_code == 201 and said.json()["recipients"] == ["bob"]
    assert heard[0]["body"] == "I take the parser"
    assert heard[0]["thread_id"] == pair["thread_id"]
    assert [p["id"] for p in mine] == [pair["id"]]
    assert ended.json()["status"] == "ended" and ended.json()["reason"] == "hangup"
    assert problem(late, 409)["status"] == 409
    kinds = [e["kind"] for e in http.get("/v1/events", params={"kind": "pair."}).json()]
    assert kinds == ["pair.invited", "pair.accepted", "pair.ended"]


def test_refusals_are_problems_that_name_the_blocking_pair(
    server: LiveServer, http: httpx.Client, cast: Callable[..., str]
) -> None:
    alice, _, carol = cast("alice"), cast("bob"), cast("carol")
    with as_agent(http, alice) as a:
        first = a.post("/v1/pairs", json={"target": "bob", "objective": "one"}).json()
        path = f"/v1/pairs/{first['id']}"
        with unchanged(server):
            busy = a.post("/v1/pairs", json={"target": "carol", "objective": "two"})
            not_mine = a.post(f"{path}/accept", json={})
            nobody = a.post("/v1/pairs", json={"target": "zed", "objective": "x"})
            empty = a.post("/v1/pairs", json={"target": "bob", "objective": " "})
            unknown_field = a.post(f"{path}/hangup", json={"agent_id": "alice", "why": 1})
            as_other = a.post(f"{path}/hangup", json={"agent_id": "bob"})
    with as_agent(http, carol) as c, unchanged(server):
        hidden = c.get(path)
        hidden_accept = c.post(f"{path}/accept", json={})
        other_view = c.get("/v1/pairs", params={"agent": "alice"})

    assert problem(busy, 409)["pair"] == first["id"]
    assert f"pair {first['id']}" in problem(busy, 409)["detail"]
    assert "only bob" in problem(not_mine, 403)["detail"]
    problem(nobody, 404)
    assert empty.status_code == 422
    assert unknown_field.status_code == 422
    problem(as_other, 403)  # an agent token acts as its own agent only
    problem(hidden, 404)
    problem(hidden_accept, 404)
    problem(other_view, 403)
    with as_agent(http, carol) as c:
        assert c.get("/v1/pairs").json() == []


def test_admin_acts_as_a_named_agent_and_lists_every_pair(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        cast(name)
    one = http.post("/v1/pairs", json={"agent_id": "alice", "target": "bob", "objective": "a"})
    two = http.post("/v1/pairs", json={"agent_id": "carol", "target": "dave", "objective": "b"})
    http.post(f"/v1/pairs/{two.json()['id']}/reject", json={"agent_id": "dave"})

    every = http.get("/v1/pairs").json()
    pending = http.get("/v1/pairs", params={"status": "pending"}).json()
    bobs = http.get("/v1/pairs", params={"agent": "bob"}).json()

    assert [p["id"] for p in every] == [two.json()["id"], one.json()["id"]]
    assert [p["id"] for p in pending] == [one.json()["id"]]
    assert [p["id"] for p in bobs] == [one.json()["id"]]
    assert http.get("/v1/pairs", params={"status": "asleep"}).status_code == 422
    problem(http.get("/v1/pairs/999"), 404)


RACERS = 8


def test_of_eight_invites_racing_through_a_server_exactly_one_wins(
    secured: LiveServer,
) -> None:
    with httpx.Client(base_url=secured.url, headers=bearer(ADMIN), timeout=30) as admin:
        register(admin, "hub")
        tokens = [register(admin, f"a{i}") for i in range(RACERS)]
    start = threading.Barrier(RACERS)
    replies: list[httpx.Response | None] = [None] * RACERS

    def invite(i: int) -> None:
        with httpx.Client(base_url=secured.url, headers=bearer(tokens[i]), timeout=30) as c:
            start.wait()
            replies[i] = c.post("/v1/pairs", json={"target": "hub", "objective": f"race {i}"})

    threads = [threading.Thread(target=invite, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    statuses = sorted(r.status_code for r in replies if r is not None)
    assert statuses == [201] + [409] * (RACERS - 1)
    won = next(r.json() for r in replies if r is not None and r.status_code == 201)
    lost = [r.json() for r in replies if r is not None and r.status_code == 409]
    assert all(p["pair"] == won["id"] for p in lost)


def test_an_agent_sees_the_events_of_its_own_pairs_only(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    alice, bob, carol = cast("alice"), cast("bob"), cast("carol")
    cast("dave")
    with as_agent(http, alice) as a:
        mine = a.post("/v1/pairs", json={"target": "bob", "objective": "one"}).json()
    with as_agent(http, carol) as c:
        c.post("/v1/pairs", json={"target": "dave", "objective": "two"})

    seen = {}
    for name, token in (("alice", alice), ("bob", bob), ("carol", carol)):
        with as_agent(http, token) as client:
            found = client.get("/v1/events", params={"kind": "pair."}).json()
            seen[name] = [(e["kind"], e["data"]["pair_id"]) for e in found]

    assert seen["alice"] == seen["bob"] == [("pair.invited", mine["id"])]
    assert seen["carol"] == [("pair.invited", mine["id"] + 1)]
