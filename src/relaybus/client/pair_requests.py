"""The HTTP requests of the pair operations, described once (as
:mod:`relaybus.client.operations` describes the rest): invite, accept, reject, hang up,
pair messages, and reading pairs. Standard library only."""

from __future__ import annotations

from .request import JSON, Request, json_body, segment


def _acting(
    pair_id: int, action: str, agent_id: str, workspace: str, epoch: int | None, body: JSON
) -> Request:
    """``POST /v1/pairs/{id}{action}`` acting as ``agent_id``."""
    path = f"/v1/pairs/{segment(pair_id)}{action}"
    return Request("POST", path, workspace=workspace, agent=agent_id, epoch=epoch, body=body)


def pair_invite(
    agent_id: str, target: str, objective: str, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/pairs``: ``agent_id`` invites agent ``target``."""
    body = json_body(agent_id=agent_id, target=target, objective=objective)
    return Request("POST", "/v1/pairs", workspace=workspace, agent=agent_id, epoch=epoch, body=body)


def pair_accept(
    pair_id: int, agent_id: str, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/pairs/{id}/accept`` (the invitee)."""
    return _acting(pair_id, "/accept", agent_id, workspace, epoch, {"agent_id": agent_id})


def pair_reject(
    pair_id: int, agent_id: str, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/pairs/{id}/reject`` (the invitee)."""
    return _acting(pair_id, "/reject", agent_id, workspace, epoch, {"agent_id": agent_id})


def pair_hangup(
    pair_id: int, agent_id: str, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/pairs/{id}/hangup`` (either side)."""
    return _acting(pair_id, "/hangup", agent_id, workspace, epoch, {"agent_id": agent_id})


def pair_send(
    pair_id: int, agent_id: str, body: str, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/pairs/{id}/messages``: a pair message to the other side."""
    fields = {"agent_id": agent_id, "body": body}
    return _acting(pair_id, "/messages", agent_id, workspace, epoch, fields)


def get_pair(pair_id: int, *, workspace: str, viewer: str | None = None) -> Request:
    """``GET /v1/pairs/{id}``; ``viewer``: read as that agent (``?agent=``)."""
    path = f"/v1/pairs/{segment(pair_id)}"
    return Request("GET", path, workspace=workspace, agent=viewer, params={"agent": viewer})


def list_pairs(
    *,
    workspace: str,
    viewer: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> Request:
    """``GET /v1/pairs``; ``viewer``: only that agent's pairs."""
    params = {"agent": viewer, "status": status, "limit": limit}
    return Request("GET", "/v1/pairs", workspace=workspace, agent=viewer, params=params)
