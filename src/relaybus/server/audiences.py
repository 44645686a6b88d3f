"""Who may see a task's events, remembered per task for the hub's fan-out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..models import Event

if TYPE_CHECKING:
    from ..service import Service

#: Tasks whose audience (creator, recipients of its message, holder) is remembered.
TASK_CACHE_SIZE = 10_000


class TaskAudiences:
    """Which agents may see a task's events: the agents that may see the task
    (:func:`relaybus.service.visibility.task_audience`: its creator, the
    recipients of its message, its holder), loaded from the database the first
    time a task shows up, then kept up to date from the events themselves (an
    agent acting on a task may see it: the service refuses any other); least
    recently used tasks are forgotten first."""

    def __init__(self, service: Service, size: int = TASK_CACHE_SIZE) -> None:
        self.service = service
        self.size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[str, int], set[str]] = OrderedDict()

    def audience(self, event: Event) -> frozenset[str]:
        task_id = event.data.get("task_id")
        actor = event.agent_id
        if not isinstance(task_id, int):
            return frozenset([actor]) if actor else frozenset()
        key = (event.workspace, task_id)
        with self._lock:
            agents = self._known.get(key)
            if agents is not None:
                self._known.move_to_end(key)
        if agents is None:
            loaded = self._load(event.workspace, task_id)  # outside the lock: a query
            with self._lock:
                agents = self._known.setdefault(key, loaded)
                while len(self._known) > self.size:
                    self._known.popitem(last=False)
        with self._lock:
            if actor:
                agents.add(actor)  # the creator, a claimer or a holder acting
            return frozenset(agents)

    def _load(self, workspace: str, task_id: int) -> set[str]:
        # The service's visibility rule; empty for a task that does not exist.
        return self.service.task_audience(task_id, workspace=workspace)
