"""Integrations: manage them (admin), take their events, list and replay their callbacks.

An integration's own token (``rbi_…``) may post events (scope ``tasks:create``), read its
own integration, and list its callbacks (``events:read``); everything else here needs the
admin token. Rotating or revoking a token forgets it on this server at once, and on
other replicas within ``token_cache_seconds``.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Path, Query
from starlette.responses import Response

from ...models import CallbackDelivery, CallbackStatus, Ingested, Integration, IntegrationCreated
from ...wire import (
    CALLBACK_LIST,
    INTEGRATION_LIST,
    LIMIT_BOUNDS,
    IntegrationBody,
    IntegrationEvent,
    Rotation,
)
from ..auth import ApiCall, ApiRequest, Caller
from ..problems import responses
from . import IdPath, make_router, render, render_list

router = make_router(tags=["integrations"])
#: An integration's name in a path.
NamePath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", description="The integration.")
]


class EventFields(Protocol):
    """An event's fields, as :class:`~relaybus.wire.IntegrationEvent` has them (the
    ``/api`` compatibility routes' body too); read-only."""

    @property
    def integration(self) -> str | None: ...

    @property
    def source(self) -> str | None: ...

    @property
    def title(self) -> str | None: ...

    @property
    def body(self) -> str | None: ...

    @property
    def target(self) -> str | None: ...

    @property
    def channel(self) -> str | None: ...

    @property
    def external_url(self) -> str | None: ...

    @property
    def metadata(self) -> dict[str, Any] | None: ...

    @property
    def priority(self) -> str: ...

    @property
    def dedupe_key(self) -> str | None: ...

    @property
    def status(self) -> str: ...


def ingest(call: ApiRequest, event: EventFields) -> Ingested:
    """Take ``event`` as its caller: an integration's token posts as itself (naming
    another integration needs the admin token), the admin as ``event.integration`` or
    as the operator.

    Raises:
        Forbidden, RateLimited, InvalidInput, NotFound: see ``Service.ingest_event``.
    """
    caller = call.caller(integrations=True)
    name = event.integration
    if caller.integration is not None:
        if name is not None and name != caller.integration:
            caller.require_admin(f"posting as integration {name!r}")
        name = caller.integration
    return call.service.ingest_event(
        name,
        workspace=caller.workspace,
        title=event.title,
        body=event.body,
        source=event.source,
        target=event.target,
        channel=event.channel,
        external_url=event.external_url,
        metadata=event.metadata,
        priority=event.priority,
        dedupe_key=event.dedupe_key,
        status=event.status,
    )


def _own(call: ApiRequest, name: str, scope: str | None = None) -> Caller:
    """The caller, if it is admin or integration ``name`` itself (with ``scope``)."""
    caller = call.caller(integrations=True)
    if caller.integration is None:
        caller.require_admin(f"reading integration {name!r}")
    elif caller.integration != name:
        caller.require_admin(f"integration {name!r}")
    elif scope is not None:
        caller.require_scope(scope)
    return caller


@router.post(
    "/v1/integrations/events",
    response_model=Ingested,
    status_code=201,
    responses={
        **responses(400, 404, 413),
        200: {"model": Ingested, "description": "A repeat, a resolution, or nothing to resolve."},
    },
)
def post_event(body: IntegrationEvent, call: ApiCall) -> Response:
    """Take an event: 201 when it opened a task (and its claimable message to the
    target), 200 when it raised an active task's occurrence count (same
    ``dedupe_key``) or resolved it (``status: resolved``), or found nothing to
    resolve (``outcome: ignored``)."""
    found = ingest(call, body)
    return render(found, 201 if found.outcome == "created" else 200)


@router.post(
    "/v1/integrations",
    response_model=IntegrationCreated,
    status_code=201,
    responses=responses(400, 403, 409, 413),
)
def add_integration(body: IntegrationBody, call: ApiCall) -> Response:
    """Create an integration (admin). The answer holds its token and, with a callback
    URL, its signing secret: shown this once."""
    caller = call.caller()
    caller.require_admin("adding an integration")
    created = call.service.add_integration(
        body.name,
        workspace=caller.workspace,
        scopes=body.scopes,
        targets=body.targets,
        channels=body.channels,
        callback_url=body.callback_url,
        rate_limit=body.rate_limit,
    )
    return render(created, 201)


@router.get("/v1/integrations", response_model=list[Integration], responses=responses(403))
def list_integrations(call: ApiCall) -> Response:
    """The workspace's integrations, by name (admin)."""
    caller = call.caller()
    caller.require_admin("listing integrations")
    return render_list(INTEGRATION_LIST, call.service.list_integrations(workspace=caller.workspace))


@router.get(
    "/v1/integrations/{name}", response_model=Integration, responses=responses(400, 403, 404)
)
def get_integration(name: NamePath, call: ApiCall) -> Response:
    """One integration (admin, or the integration itself)."""
    caller = _own(call, name)
    return render(call.service.get_integration(name, workspace=caller.workspace))


@router.post(
    "/v1/integrations/{name}/rotate",
    response_model=IntegrationCreated,
    responses=responses(400, 403, 404, 413),
)
def rotate_integration(name: NamePath, body: Rotation, call: ApiCall) -> Response:
    """A new token (and with ``secret``, a new signing secret) for the integration
    (admin); the old token stops at once. A revoked integration comes back."""
    caller = call.caller()
    caller.require_admin("rotating an integration's token")
    created = call.service.rotate_integration(name, workspace=caller.workspace, secret=body.secret)
    call.context.auth.cache.forget(caller.workspace, integration=name)
    return render(created)


@router.delete(
    "/v1/integrations/{name}", response_model=Integration, responses=responses(400, 403, 404)
)
def revoke_integration(name: NamePath, call: ApiCall) -> Response:
    """Revoke the integration (admin): its token stops at once, its callbacks stop;
    its tasks stay."""
    caller = call.caller()
    caller.require_admin("revoking an integration")
    revoked = call.service.revoke_integration(name, workspace=caller.workspace)
    call.context.auth.cache.forget(caller.workspace, integration=name)
    return render(revoked)


@router.get(
    "/v1/integrations/{name}/deliveries",
    response_model=list[CallbackDelivery],
    responses=responses(400, 403, 404),
)
def callback_deliveries(
    name: NamePath,
    call: ApiCall,
    status: CallbackStatus | None = None,
    limit: Annotated[int, Query(json_schema_extra=LIMIT_BOUNDS)] = 100,
) -> Response:
    """The integration's callbacks, newest first, each with every attempt (admin, or
    the integration itself with ``events:read``)."""
    caller = _own(call, name, "events:read")
    found = call.service.callback_deliveries(
        name, workspace=caller.workspace, status=status, limit=limit
    )
    return render_list(CALLBACK_LIST, found)


@router.post(
    "/v1/integrations/{name}/deliveries/{delivery_id:id}/replay",
    response_model=CallbackDelivery,
    responses=responses(400, 403, 404, 409),
)
def replay_callback(name: NamePath, delivery_id: IdPath, call: ApiCall) -> Response:
    """Send a dead (or delivered) callback again, now, with a fresh budget of attempts
    (admin)."""
    caller = call.caller()
    caller.require_admin("replaying a callback")
    replayed = call.service.replay_callback(name, delivery_id, workspace=caller.workspace)
    call.hub.callbacks_due()  # no task changed: wake this server's sender, not its poll
    return render(replayed)
