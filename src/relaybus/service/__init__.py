"""The service layer: every business rule of relaybus, one transaction per operation.

:class:`Service` gathers the operations of each concern (agents, messages,
inbox, tasks, events, retention). Transports (the Python SDK, the CLI, the
HTTP server, MCP) parse, call one of these methods and render the result.
"""

from __future__ import annotations

from ..identity import derive_agent_id
from .agents import AgentOps
from .callbacks import CallbackOps
from .events import EventOps
from .history import HistoryOps
from .inbox import InboxOps
from .ingress import IngressOps
from .integrations import IntegrationOps
from .message_list import MessageListOps
from .messages import MessageOps
from .pairs import PairOps
from .renewals import RenewalOps
from .retention import RetentionOps
from .stats import StatsOps, WorkspaceStats
from .targets import Target, parse_target
from .tasks import TaskOps
from .tokens import TokenOps, hash_token, new_token
from .workflow_runs import WorkflowRunOps


class Service(
    AgentOps,
    MessageOps,
    InboxOps,
    TaskOps,
    RenewalOps,
    EventOps,
    RetentionOps,
    StatsOps,
    TokenOps,
    IntegrationOps,
    IngressOps,
    CallbackOps,
    HistoryOps,
    MessageListOps,
    PairOps,
    WorkflowRunOps,
):
    """All relay operations over one :class:`~relaybus.store.Store`.

    Every method takes ``workspace`` (default ``"default"``); methods acting
    as an agent take an optional ``epoch`` and refuse a stale one with
    :class:`~relaybus.errors.Conflict`.
    """

    def close(self) -> None:
        """Close the store (its connections and wake-up socket)."""
        self.store.close()


__all__ = [
    "Service",
    "Target",
    "WorkspaceStats",
    "parse_target",
    "derive_agent_id",
    "hash_token",
    "new_token",
]
