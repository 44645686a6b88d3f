# Generated from aio_integrations.py by scripts/unasync.py: do not edit. Edit aio_integrations.py
# (the async source) and run `python scripts/unasync.py`; CI checks they agree.
"""Integrations from the SDK: :class:`IntegrationsView`, the integration operations
of :class:`~relaybus.client.relay.Relay` (managing integrations needs the admin
token; posting an event works with an integration's own token too).

>>> created = relay.add_integration("alertmanager", targets=["cap:ops"],
...                                       callback_url="https://ops.example/cb")
>>> created.token, created.secret  # shown once
>>> relay.post_event("prod-api 5xx high", integration="alertmanager",
...                        dedupe_key="prod-api-5xx")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..models import CallbackDelivery, Ingested, Integration, IntegrationCreated
from . import calls
from .transport import Call

T = TypeVar("T")


class IntegrationsView(ABC):
    """The integration operations of a relay (see the module docstring)."""

    @abstractmethod
    def _run(self, call: Call[T]) -> T:
        """``call`` run by the relay's backend."""

    @property
    @abstractmethod
    def _workspace(self) -> str:
        """The workspace the calls work in."""

    def add_integration(
        self,
        name: str,
        *,
        scopes: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        callback_url: str | None = None,
        rate_limit: int | None = None,
    ) -> IntegrationCreated:
        """Create an integration; its token (and signing secret, with a callback URL) are
        in the answer, this once. Raises Conflict for a name in use, InvalidInput."""
        return self._run(
            calls.add_integration(
                name,
                workspace=self._workspace,
                scopes=scopes,
                targets=targets,
                channels=channels,
                callback_url=callback_url,
                rate_limit=rate_limit,
            )
        )

    def integrations(self) -> list[Integration]:
        """The workspace's integrations, by name."""
        return self._run(calls.list_integrations(workspace=self._workspace))

    def integration(self, name: str) -> Integration:
        """One integration. Raises NotFound."""
        return self._run(calls.get_integration(name, workspace=self._workspace))

    def rotate_integration(self, name: str, *, secret: bool = False) -> IntegrationCreated:
        """A new token for the integration (the old one stops), and with ``secret`` a new
        signing secret. Raises NotFound."""
        return self._run(calls.rotate_integration(name, workspace=self._workspace, secret=secret))

    def revoke_integration(self, name: str) -> Integration:
        """Revoke the integration: its token and its callbacks stop. Raises NotFound."""
        return self._run(calls.revoke_integration(name, workspace=self._workspace))

    def post_event(
        self,
        title: str | None = None,
        *,
        integration: str | None = None,
        body: str | None = None,
        source: str | None = None,
        target: str | None = None,
        channel: str | None = None,
        external_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority: str = "normal",
        dedupe_key: str | None = None,
        status: str = "open",
    ) -> Ingested:
        """Post an event as ``integration`` (with an integration's token: itself, leave
        it out), or as the operator: a new task, a repeat of an active one (same
        ``dedupe_key``), or with ``status="resolved"`` its resolution (see
        ``Service.ingest_event``). Raises Forbidden, RateLimited, InvalidInput, NotFound.
        """
        return self._run(
            calls.ingest_event(
                integration,
                workspace=self._workspace,
                title=title,
                body=body,
                source=source,
                target=target,
                channel=channel,
                external_url=external_url,
                metadata=metadata,
                priority=priority,
                dedupe_key=dedupe_key,
                status=status,
            )
        )

    def callbacks(
        self, name: str, *, status: str | None = None, limit: int = 100
    ) -> list[CallbackDelivery]:
        """The integration's callbacks, newest first, each with its attempts."""
        return self._run(
            calls.callback_deliveries(name, workspace=self._workspace, status=status, limit=limit)
        )

    def replay_callback(self, name: str, delivery_id: int) -> CallbackDelivery:
        """Send a dead (or delivered) callback again, now. Raises NotFound, Conflict (it
        is still pending)."""
        return self._run(calls.replay_callback(name, delivery_id, workspace=self._workspace))
