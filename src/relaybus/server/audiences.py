"""Who may see a task's events, remembered per task for the hub's fan-out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..errors import NotFound
from ..models import Event

if TYPE_CHECKING:
    from ..service import Service

#: Tasks whose audience (creator, offered agents, holders) is remembered.
TASK_CACHE_SIZE = 10_000


class TaskAudiences:
    """Which agents may see a task's events: its creator, the agents it was offered
    to (the recipients of its message) and every agent that held it. Loaded from
    the database the first time a task shows up, then kept up to date from the
    events themselves; least recently used tasks are forgotten first."""

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
        try:
            task = self.service.get_task(task_id, workspace=workspace, sweep=False)
        except NotFound:
            return set()  # pruned: only the actors of its events see them
        agents = {a for a in (task.creator, task.assignee) if a}
        if task.message_id is not None:
            message = self.service.messages_by_id([task.message_id]).get(task.message_id)
            if message is not None:
                agents.update(message.recipients)
        return agents
