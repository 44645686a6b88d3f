"""The server's background sweeper: lapsed leases are released with nobody reading,
each run is counted in /metrics, and /v1/info names the replica."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.support.live import UNUSED_TLS, live_server
from tests.support.poll import until

HUNG = 30.0


def test_the_sweeper_releases_a_lapsed_lease_with_nobody_reading_the_task(
    tmp_path: Path,
    database: str | None,
) -> None:
    with live_server(tmp_path, database=database, sweep_interval=0.1) as srv:
        service = srv.service
        service.register("boss")
        service.register("worker")
        sent = service.send("boss", "worker", "fix the build", claimable=True)
        assert sent.task_id is not None
        service.claim(sent.task_id, "worker", lease=0.3)
        # Watch the log, not the task: reading a task would sweep it lazily.
        released = service.store.wait_for(
            lambda: [e for e in service.events(limit=1000) if e.kind == "task.released"], HUNG
        )
        assert [e.data for e in released] == [{"task_id": sent.task_id, "reason": "lease expired"}]
        counted = 'relaybus_sweep_changes_total{change="tasks_released",job="sweep"} 1.0'
        with httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http:
            # The sweeper counts a run after it returns, the event is visible at its
            # commit: look again until the count is there (bounded).
            def counted_metrics() -> str:
                text = http.get("/metrics").text
                return text if counted in text else ""

            metrics = until(counted_metrics, HUNG)
            info = http.get("/v1/info").json()
    assert counted in metrics
    assert 'relaybus_sweeps_total{job="sweep"}' in metrics
    assert info["replica"].endswith(f":{os.getpid()}")


def test_without_an_interval_the_server_runs_no_background_jobs(
    tmp_path: Path, database: str | None
) -> None:
    with (
        live_server(tmp_path, database=database) as srv,
        httpx.Client(base_url=srv.url, timeout=HUNG, verify=UNUSED_TLS) as http,
    ):
        srv.service.register("alice")
        assert "relaybus_sweeps_total{" not in http.get("/metrics").text
