"""Background jobs: each run claimed by exactly one process, sweeps across workspaces,
and lapsed leases released once however many sweepers race."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from relaybus.service import Service
from relaybus.store import Store

if TYPE_CHECKING:
    from tests.conftest import Clock


def _second(store: Store, clock: Clock) -> Store:
    """Another store on the same database, as a second process or replica has."""
    return Store(store.url.render_as_string(hide_password=False), clock=clock)


def _claimed_tasks(service: Service, n: int, *, workspace: str, lease: float) -> list[int]:
    service.register("boss", workspace=workspace)
    service.register("worker", workspace=workspace)
    ids = []
    for i in range(n):
        sent = service.send("boss", "worker", f"job {i}", claimable=True, workspace=workspace)
        assert sent.task_id is not None
        service.claim(sent.task_id, "worker", workspace=workspace, lease=lease)
        ids.append(sent.task_id)
    return ids


def test_each_run_of_a_job_goes_to_exactly_one_claimer_per_interval(
    store: Store, clock: Clock
) -> None:
    with _second(store, clock) as other_store:
        one, two = Service(store), Service(other_store)
        assert one.claim_job("sweep", 5.0, runner="one") is True  # the first run ever
        assert two.claim_job("sweep", 5.0, runner="two") is False
        assert one.claim_job("sweep", 5.0, runner="one") is False
        clock.advance(5.0)
        assert two.claim_job("sweep", 5.0, runner="two") is True
        assert one.claim_job("sweep", 5.0, runner="one") is False
        # Jobs are claimed independently of each other.
        assert one.claim_job("prune", 3600.0, runner="one") is True


def test_sweep_all_releases_lapsed_leases_in_every_workspace_once(
    service: Service, clock: Clock
) -> None:
    red = _claimed_tasks(service, 2, workspace="red", lease=10)
    blue = _claimed_tasks(service, 1, workspace="blue", lease=10)
    assert service.sweep_all() == {"agents_offline": 0, "tasks_released": 0}
    clock.advance(11)
    for workspace in ("red", "blue"):
        service.heartbeat("worker", workspace=workspace)  # online: only the leases lapsed
    assert service.sweep_all() == {"agents_offline": 0, "tasks_released": 3}
    assert service.sweep_all() == {"agents_offline": 0, "tasks_released": 0}
    for workspace, ids in (("red", red), ("blue", blue)):
        for task_id in ids:
            assert service.get_task(task_id, workspace=workspace, sweep=False).status == "open"
    assert service.workspaces() == ["blue", "red"]


def test_racing_sweepers_release_each_lapsed_lease_exactly_once(store: Store, clock: Clock) -> None:
    service = Service(store)
    ids = _claimed_tasks(service, 30, workspace="default", lease=10)
    clock.advance(11)
    service.heartbeat("worker")
    released: list[int] = []
    lock = threading.Lock()
    with _second(store, clock) as other_store:
        services = [service, Service(other_store)]
        start = threading.Barrier(6)

        def sweep(i: int) -> None:
            start.wait(timeout=30)
            n = services[i % 2].sweep_all()["tasks_released"]
            with lock:
                released.append(n)

        threads = [threading.Thread(target=sweep, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert sum(released) == len(ids)
    events = [e for e in service.events(limit=1000) if e.kind == "task.released"]
    assert sorted(e.data["task_id"] for e in events) == sorted(ids)
    for task_id in ids:
        history = [h.kind for h in service.task_history(task_id)]
        assert history.count("released") == 1
