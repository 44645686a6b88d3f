"""Presence: who is online, derived from heartbeats and, on this host, live pids."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from ..models import AgentStatus

#: This machine's name, as agents registered here record it.
HOSTNAME = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists on this host (signal 0 probe)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def effective_status(row: Mapping[Any, Any], now: float, stale_ttl: float) -> AgentStatus:
    """The status an agent row reads as at ``now``.

    Offline if it said so, if its last heartbeat is older than ``stale_ttl``
    seconds, or if it runs on this host and its pid is gone.
    """
    status = AgentStatus(row["status"])
    if status is AgentStatus.OFFLINE:
        return status
    if now - row["last_seen_at"] > stale_ttl:
        return AgentStatus.OFFLINE
    pid = row["pid"]
    if pid is not None and row["host"] == HOSTNAME and not pid_alive(pid):
        return AgentStatus.OFFLINE
    return status
