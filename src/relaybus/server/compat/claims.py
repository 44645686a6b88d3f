"""Claiming work the seed's ways: a claimable message (``POST /api/messages/{id}/claim``
and ``…/claim/renew``) or its task (``/api/tasks/{id}/claim``, ``…/renew``,
``…/release``). relaybus has one claim mechanism, the task: a message's claim is
its task's. Of racing claimers exactly one wins; the others get 409, as in the seed.

Claims are leases (``leaseMs``, default the relay's ``lease_seconds``): renew them or
lose them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from starlette.responses import Response

from ...bounds import MAX_LEASE_SECONDS
from ...errors import InvalidInput
from ...models import Task
from ..auth import ApiRequest
from ..routes import IdPath
from .common import CompatCall, SeedActor, answer, json_body, make_compat_router
from .shapes import claim_view, task_view

router = make_compat_router()


class SeedClaim(SeedActor):
    """Who claims (``agentId``; an agent token: its own agent), its session fence,
    and for how long (``leaseMs``, milliseconds, up to a week)."""

    lease_ms: float | None = Field(default=None, gt=0, le=MAX_LEASE_SECONDS * 1000)

    def lease(self) -> float | None:
        """The lease in seconds (None: the relay's default)."""
        return None if self.lease_ms is None else self.lease_ms / 1000


Claim = Annotated[SeedClaim, json_body(SeedClaim)]


@router.post("/api/messages/{message_id:id}/claim")
def claim_message(message_id: IdPath, body: Claim, call: CompatCall) -> Response:
    """Claim the task of a claimable message: 200 with who holds it until when; 409
    if another agent holds it; 400 if the message is not claimable; 404 if the agent
    did not receive it."""
    return answer(claim_view(message_id, _hold(call, body, message_id=message_id)))


@router.post("/api/messages/{message_id:id}/claim/renew")
def renew_message_claim(message_id: IdPath, body: Claim, call: CompatCall) -> Response:
    """Extend the lease of a message claim the agent holds (409 if it does not)."""
    task = _hold(call, body, message_id=message_id, renew=True)
    return answer(claim_view(message_id, task))


@router.post("/api/tasks/{task_id:id}/claim")
def claim_task(task_id: IdPath, body: Claim, call: CompatCall) -> Response:
    """Claim a task (only a recipient of its message may): the task."""
    return answer(task_view(_hold(call, body, task_id=task_id)))


@router.post("/api/tasks/{task_id:id}/claim/renew")
@router.post("/api/tasks/{task_id:id}/renew")
def renew_task(task_id: IdPath, body: Claim, call: CompatCall) -> Response:
    """Extend the lease of a task the agent holds: the task."""
    return answer(task_view(_hold(call, body, task_id=task_id, renew=True)))


@router.post("/api/tasks/{task_id:id}/release")
def release_task(task_id: IdPath, body: Claim, call: CompatCall) -> Response:
    """Give a held task back (it is open again): the task."""
    caller = call.caller()
    task = call.service.release(
        task_id,
        caller.act_as(body.agent_id, "agentId"),
        workspace=caller.workspace,
        epoch=body.epoch,
    )
    return answer(task_view(task))


def _hold(
    call: ApiRequest,
    body: SeedClaim,
    *,
    message_id: int | None = None,
    task_id: int | None = None,
    renew: bool = False,
) -> Task:
    # Claim or renew a task, named by its id or by its message's.
    caller = call.caller()
    agent = caller.act_as(body.agent_id, "agentId")
    service, workspace = call.service, caller.workspace
    if task_id is None:
        assert message_id is not None
        message = service.get_message(message_id, workspace=workspace, viewer=agent)
        if message.task_id is None:
            raise InvalidInput(
                f"message {message_id} is not claimable: send it with claimable: true "
                "to make it a task",
                message_id=message_id,
            )
        task_id = message.task_id
    hold = service.renew if renew else service.claim
    return hold(task_id, agent, workspace=workspace, epoch=body.epoch, lease=body.lease())
