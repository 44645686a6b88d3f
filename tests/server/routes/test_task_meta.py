"""A claimable message's task keeps the message's meta, through every way of
reading it (on each dialect), including the batch send."""

from __future__ import annotations

from collections.abc import Callable

import httpx

META = {"pr": 7, "labels": ["auth", "api"], "ci": {"run": 12}}


def test_a_claimable_messages_task_carries_its_meta(
    http: httpx.Client, cast: Callable[..., str]
) -> None:
    cast("alice")
    cast("bob", capabilities=["review"])
    single = http.post(
        "/v1/messages",
        json={"sender": "alice", "to": "bob", "body": "PR 7", "claimable": True, "meta": META},
    )
    batch = http.post(
        "/v1/messages/batch",
        json={
            "sender": "alice",
            "messages": [{"to": "cap:review", "body": "PR 8", "claimable": True, "meta": META}],
        },
    )
    assert single.status_code == 201, single.text
    assert batch.status_code == 201, batch.text
    task_ids = [single.json()["task_id"], batch.json()[0]["task_id"]]

    for task_id in task_ids:
        assert http.get(f"/v1/tasks/{task_id}").json()["meta"] == META
        claimed = http.post(f"/v1/tasks/{task_id}/claim", json={"agent_id": "bob"})
        assert claimed.json()["meta"] == META
        done = http.patch(
            f"/v1/tasks/{task_id}", json={"agent_id": "bob", "status": "done", "result": "ok"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["meta"] == META
    listed = {t["id"]: t["meta"] for t in http.get("/v1/tasks").json()}
    assert listed == dict.fromkeys(task_ids, META)
