"""The background sweeper of one server process: lapsed leases, offline agents
and retention, on every replica of a cluster, each run by exactly one of them;
and the callback sender, whose every attempt is claimed by one replica.

Every replica ticks; before running a job it claims the job's current run in
the database (:meth:`~relaybus.service.Service.claim_job`), so with N replicas
a job still runs once per interval, and keeps running while any replica is
up. The jobs themselves are idempotent compare-and-set sweeps (see
:mod:`relaybus.service.sweeps`), so even two runs at once would change each
row once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

from ..service import Service

if TYPE_CHECKING:
    from ..integrations.sender import CallbackSender, Wakeup
    from .metrics import Metrics

logger = logging.getLogger(__name__)

#: This process, as it signs the runs it claims (``sweeps.ran_by``, ``/v1/info``).
REPLICA = f"{socket.gethostname()}:{os.getpid()}"
#: The shortest pause between two ticks (seconds).
MIN_TICK = 0.05
#: Seconds :meth:`Sweeper.stop` waits for a running tick.
STOP_SECONDS = 5.0


@dataclass(eq=False)
class Sweeper:
    """Runs the background jobs of one server until stopped.

    Args:
        service: the relay.
        sweep_interval: seconds between sweeps (lapsed leases, stale agents); 0: never.
        prune_interval: seconds between retention prunes; 0: never.
        runner: who this replica is (default :data:`REPLICA`).
        metrics: counts the runs this replica won and what they changed.
        after_prune: called with each pruned workspace (e.g. to forget cached tokens).
        callbacks: the callback sender to run beside the jobs (every replica runs one).
        wakeup: what wakes the sender when a task changes (the hub).
    """

    service: Service
    _: KW_ONLY
    sweep_interval: float
    prune_interval: float
    runner: str = REPLICA
    metrics: Metrics | None = None
    after_prune: Callable[[str], None] | None = None
    #: Posts the callback outbox (on every replica; each attempt is claimed by one).
    callbacks: CallbackSender | None = None
    #: What wakes the callback sender when a task changes (the hub).
    wakeup: Wakeup | None = None
    #: ``(job, interval)`` of each job that runs (an interval above 0).
    jobs: list[tuple[str, float]] = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _sender: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.jobs = [
            (job, interval)
            for job, interval in (("sweep", self.sweep_interval), ("prune", self.prune_interval))
            if interval > 0
        ]

    def start(self) -> None:
        """Start ticking on the running event loop (nothing to do without jobs)."""
        if self.jobs and self._task is None:
            self._task = asyncio.create_task(self._run(), name="relaybus-sweeper")
        if self.callbacks is not None and self._sender is None:
            self._sender = asyncio.create_task(
                self.callbacks.run(self._stop, self.wakeup), name="relaybus-callbacks"
            )

    async def stop(self) -> None:
        """Stop ticking; waits up to :data:`STOP_SECONDS` for a tick (or a round of
        callbacks) in progress."""
        self._stop.set()
        for task in (self._task, self._sender):
            if task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)

    async def _run(self) -> None:
        tick = max(min(interval for _, interval in self.jobs) / 2, MIN_TICK)
        while not self._stop.is_set():
            await asyncio.to_thread(self.tick)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), tick)

    def tick(self) -> dict[str, dict[str, int]]:
        """Run every job that is due and that this replica claims (blocking).

        Returns:
            ``{job: {change: count}}`` for the jobs run here. A failing job is
            logged and tried again at its next run.
        """
        done: dict[str, dict[str, int]] = {}
        for job, interval in self.jobs:
            if self._stop.is_set():
                break
            try:
                if not self.service.claim_job(job, interval, runner=self.runner):
                    continue
                changes = self._sweep() if job == "sweep" else self._prune()
            except Exception:  # the loop's top level: log, try again next time
                logger.exception("background %s failed; it runs again in %g s", job, interval)
                continue
            done[job] = changes
            if any(changes.values()):
                logger.info("background %s: %s", job, changes)
            if self.metrics is not None:
                self.metrics.sweeps.labels(job).inc()
                for change, n in changes.items():
                    if n:
                        self.metrics.sweep_changes.labels(job, change).inc(n)
        return done

    def _sweep(self) -> dict[str, int]:
        return {**self.service.sweep_all(), "pairs_ended": self.service.sweep_pairs_all()}

    def _prune(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for workspace in self.service.workspaces():
            total.update(self.service.prune(workspace=workspace).model_dump())
            if self.after_prune is not None:
                self.after_prune(workspace)
        return dict(total)
