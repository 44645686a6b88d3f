"""The HTTP requests of the integration operations, described once (as
:mod:`relaybus.client.operations` describes the rest): managing integrations (admin),
posting their events, their callbacks, and opening a task without a message of one's
own (``POST /v1/tasks``). Standard library only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .request import Request, as_list, json_body, segment


def _named(name: str, rest: str = "") -> str:
    return f"/v1/integrations/{segment(name)}{rest}"


def add_integration(
    name: str,
    *,
    workspace: str,
    scopes: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    callback_url: str | None = None,
    rate_limit: int | None = None,
) -> Request:
    """``POST /v1/integrations`` (admin)."""
    body = json_body(
        name=name,
        scopes=as_list(scopes),
        targets=as_list(targets),
        channels=as_list(channels),
        callback_url=callback_url,
        rate_limit=rate_limit,
    )
    return Request("POST", "/v1/integrations", workspace=workspace, body=body)


def list_integrations(*, workspace: str) -> Request:
    """``GET /v1/integrations`` (admin)."""
    return Request("GET", "/v1/integrations", workspace=workspace)


def get_integration(name: str, *, workspace: str) -> Request:
    """``GET /v1/integrations/{name}``."""
    return Request("GET", _named(name), workspace=workspace)


def rotate_integration(name: str, *, workspace: str, secret: bool = False) -> Request:
    """``POST /v1/integrations/{name}/rotate`` (admin)."""
    return Request("POST", _named(name, "/rotate"), workspace=workspace, body={"secret": secret})


def revoke_integration(name: str, *, workspace: str) -> Request:
    """``DELETE /v1/integrations/{name}`` (admin)."""
    return Request("DELETE", _named(name), workspace=workspace)


def ingest_event(
    integration: str | None,
    *,
    workspace: str,
    title: str | None = None,
    body: str | None = None,
    source: str | None = None,
    target: str | None = None,
    channel: str | None = None,
    external_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    priority: str = "normal",
    dedupe_key: str | None = None,
    status: str = "open",
) -> Request:
    """``POST /v1/integrations/events``: as ``integration`` (admin; an integration's
    token posts as itself, ``None``), or as the operator."""
    fields = json_body(
        integration=integration,
        source=source,
        title=title,
        body=body,
        target=target,
        channel=channel,
        external_url=external_url,
        metadata=metadata,
        priority=priority,
        dedupe_key=dedupe_key,
        status=status,
    )
    return Request("POST", "/v1/integrations/events", workspace=workspace, body=fields)


def callback_deliveries(
    name: str, *, workspace: str, status: str | None = None, limit: int = 100
) -> Request:
    """``GET /v1/integrations/{name}/deliveries``."""
    params = {"status": status, "limit": limit}
    return Request("GET", _named(name, "/deliveries"), workspace=workspace, params=params)


def replay_callback(name: str, delivery_id: int, *, workspace: str) -> Request:
    """``POST /v1/integrations/{name}/deliveries/{id}/replay`` (admin)."""
    path = _named(name, f"/deliveries/{segment(delivery_id)}/replay")
    return Request("POST", path, workspace=workspace)


def open_task(
    *,
    workspace: str,
    title: str,
    target: str,
    creator: str | None = None,
    epoch: int | None = None,
    body: str | None = None,
    channel: str | None = None,
    meta: Mapping[str, Any] | None = None,
    external_url: str | None = None,
    priority: str = "normal",
    dedupe_key: str | None = None,
    source: str | None = None,
) -> Request:
    """``POST /v1/tasks``: a task and the claimable message offering it to ``target``,
    from agent ``creator`` (``None``: the token's agent, or the operator for admin)."""
    fields = json_body(
        agent_id=creator,
        title=title,
        target=target,
        body=body,
        channel=channel,
        meta=meta,
        external_url=external_url,
        priority=priority,
        dedupe_key=dedupe_key,
        source=source,
    )
    return Request(
        "POST", "/v1/tasks", workspace=workspace, agent=creator, epoch=epoch, body=fields
    )
