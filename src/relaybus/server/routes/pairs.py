"""Pairs: invite, accept, reject, hang up, pair messages, and reading pairs
(see :mod:`relaybus.service.pairs`).

An agent token acts as its own agent and sees only its own pairs (any other is 404,
like a missing id); the admin token acts as the agent a body names and sees every pair.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import ConfigDict, Field, TypeAdapter
from starlette.responses import Response

from ...bounds import NAME_PATTERN, anchored
from ...models import Message, Pair, PairStatus
from ...service.pairs import MAX_OBJECTIVE_CHARS
from ...wire import ID_BOUNDS, LIMIT_BOUNDS, Body, Name, Text, examples
from ..auth import ApiCall, ApiRequest, Epoch
from ..problems import responses
from . import make_router, render, render_list
from .stream import viewer_of

router = make_router(tags=["pairs"])
_AGENT = "The agent acting; defaults to the agent token's agent."
#: Built now, not on first use (the server builds every model before its routes).
_BUILT = ConfigDict(defer_build=False)
PAIR_LIST = TypeAdapter(list[Pair])
#: ``{pair_id}`` in a path.
PairPath = Annotated[
    int, Path(description="The pair id.", examples=[1], json_schema_extra=ID_BOUNDS)
]
#: ``?agent=``: whose view of the pairs a read shows.
Viewer = Annotated[
    str | None,
    Query(
        pattern=anchored(NAME_PATTERN),
        description="Read as this agent: only its pairs (admin; an agent token always "
        "reads as its own agent and may name only itself).",
    ),
]
Objective = Annotated[
    str,
    Field(
        pattern=r"^[^\x00]*\S[^\x00]*$",
        min_length=1,
        max_length=MAX_OBJECTIVE_CHARS,
        description="What the pair works on.",
    ),
]


class PairInvite(Body):
    """Who invites whom, to work on what."""

    model_config = _BUILT | examples({"agent_id": "alice", "target": "bob", "objective": "fix CI"})

    agent_id: Name | None = Field(default=None, description=_AGENT)
    target: Name = Field(description="The agent invited (an agent id).")
    objective: Objective


class PairAction(Body):
    """Who answers the invite or hangs up."""

    model_config = _BUILT | examples({"agent_id": "bob"})

    agent_id: Name | None = Field(default=None, description=_AGENT)


class PairMessage(Body):
    """A pair message to the other side."""

    model_config = _BUILT | examples({"agent_id": "alice", "body": "I take the parser"})

    agent_id: Name | None = Field(default=None, description=_AGENT)
    body: Text


@router.post(
    "/v1/pairs", response_model=Pair, status_code=201, responses=responses(400, 404, 409, 413)
)
def invite(body: PairInvite, call: ApiCall, epoch: Epoch = None) -> Response:
    """Invite an agent to pair: a pending pair, the invite in its inbox. 409 when either
    agent is already in a pending or active pair (the problem's ``pair`` names it)."""
    caller = call.caller()
    pair = call.service.pair_invite(
        caller.act_as(body.agent_id),
        body.target,
        body.objective,
        workspace=caller.workspace,
        epoch=epoch,
    )
    return render(pair, 201)


@router.get("/v1/pairs", response_model=list[Pair], responses=responses(400))
def list_pairs(
    call: ApiCall,
    agent: Viewer = None,
    status: PairStatus | None = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 100,
) -> Response:
    """Pairs, newest first: an agent's own (an agent token), or every pair (admin)."""
    caller = call.caller()
    found = call.service.list_pairs(
        workspace=caller.workspace, viewer=viewer_of(caller, agent), status=status, limit=limit
    )
    return render_list(PAIR_LIST, found)


@router.get("/v1/pairs/{pair_id:id}", response_model=Pair, responses=responses(400, 404))
def get_pair(pair_id: PairPath, call: ApiCall, agent: Viewer = None) -> Response:
    """One pair (an agent token: one it is in; any other is 404, like a missing id)."""
    caller = call.caller()
    viewer = viewer_of(caller, agent)
    return render(call.service.get_pair(pair_id, workspace=caller.workspace, viewer=viewer))


@router.post(
    "/v1/pairs/{pair_id:id}/accept", response_model=Pair, responses=responses(400, 403, 404, 409)
)
def accept(pair_id: PairPath, body: PairAction, call: ApiCall, epoch: Epoch = None) -> Response:
    """Accept a pending invite (the invitee only): the pair becomes active."""
    return _act(call, "accept", pair_id, body, epoch)


@router.post(
    "/v1/pairs/{pair_id:id}/reject", response_model=Pair, responses=responses(400, 403, 404, 409)
)
def reject(pair_id: PairPath, body: PairAction, call: ApiCall, epoch: Epoch = None) -> Response:
    """Reject a pending invite (the invitee only)."""
    return _act(call, "reject", pair_id, body, epoch)


@router.post(
    "/v1/pairs/{pair_id:id}/hangup", response_model=Pair, responses=responses(400, 404, 409)
)
def hangup(pair_id: PairPath, body: PairAction, call: ApiCall, epoch: Epoch = None) -> Response:
    """End the pair (either side; a pending invite too)."""
    return _act(call, "hangup", pair_id, body, epoch)


@router.post(
    "/v1/pairs/{pair_id:id}/messages",
    response_model=Message,
    status_code=201,
    responses=responses(400, 404, 409, 413),
)
def send(pair_id: PairPath, body: PairMessage, call: ApiCall, epoch: Epoch = None) -> Response:
    """Send a pair message to the other side, on the pair's thread (409 unless active)."""
    caller = call.caller()
    message = call.service.pair_send(
        pair_id, caller.act_as(body.agent_id), body.body, workspace=caller.workspace, epoch=epoch
    )
    return render(message, 201)


def _act(
    call: ApiRequest, action: str, pair_id: int, body: PairAction, epoch: int | None
) -> Response:
    # Accept, reject or hang up: the same request, three service operations.
    caller = call.caller()
    act = {
        "accept": call.service.pair_accept,
        "reject": call.service.pair_reject,
        "hangup": call.service.pair_hangup,
    }[action]
    return render(
        act(pair_id, caller.act_as(body.agent_id), workspace=caller.workspace, epoch=epoch)
    )
