"""Spawned agents (issue 19): agent programs the warm local relay starts and supervises
(:mod:`relaybus.runtime.spawn.supervisor`). Admin only.

Only the warm relay supervises: it puts a :class:`SupervisorSlot` in
``app.state.supervisor``, which imports and makes the supervisor on the first spawn
request (the relay's start-up stays as cheap as before). An app without one
(``relaybus serve``) answers 501.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.responses import Response

from ...errors import InvalidInput
from ...models import RestartPolicy, SpawnedAgent, SpawnedScreen
from ...service import Service
from ...wire import Body, Name, Text, examples
from ..auth import ApiCall
from ..problems import problem, responses
from . import make_router, render, render_list

if TYPE_CHECKING:
    from ...runtime.spawn.supervisor import Supervisor

router = make_router(tags=["spawned"])
_BUILT = ConfigDict(defer_build=False)
SPAWNED_LIST = TypeAdapter(list[SpawnedAgent])
#: The problem of an app with no supervisor.
NO_SUPERVISOR = "spawning needs the warm local relay (relaybus spawn starts it)"
_501: dict[int | str, dict[str, Any]] = {
    501: {
        "description": "This relay supervises no programs (a relaybus serve server): spawn "
        "through the warm local relay.",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
}
#: The path of one spawned agent (a name may hold ``/``).
_ONE = "/v1/spawned/{name:path}"


class SupervisorSlot:
    """``app.state.supervisor`` of the warm relay: the supervisor of ``relay_dir``'s
    spawned agents, made (and its module imported) on first use."""

    def __init__(self, service: Service, relay_dir: Path) -> None:
        self.service = service
        self.relay_dir = relay_dir
        self.supervisor: Supervisor | None = None

    def get(self) -> Supervisor:
        if self.supervisor is None:
            from ...runtime.spawn.supervisor import Supervisor

            self.supervisor = Supervisor(self.service, self.relay_dir)
        return self.supervisor

    @property
    def active(self) -> bool:
        """Whether a spawned agent runs (the warm relay must not idle out)."""
        return self.supervisor is not None and self.supervisor.active

    async def shutdown(self) -> None:
        """Release the running agents (the relay is stopping)."""
        if self.supervisor is not None:
            await self.supervisor.shutdown()


#: A program's argv.
Argv = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(min_length=1, max_length=256)]


class SpawnBody(Body):
    """An agent program to start: exactly one of ``cli`` (a preset) and ``command``."""

    model_config = _BUILT | examples(
        {"name": "reviewer", "cli": "claude", "model": "sonnet", "capabilities": ["review"]},
        {"name": "worker", "command": ["python3", "worker.py"], "restart": "on-failure"},
    )

    name: Name = Field(description="The agent's name (its id on the relay).")
    cli: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="A preset: claude, codex, gemini or opencode."
    )
    command: (
        Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=256)] | None
    ) = Field(default=None, description="The program and its arguments (not with cli).")
    model: Annotated[str, Field(max_length=200)] | None = None
    task: Text | None = Field(
        default=None, description="The first task: typed in when idle, or the preset's prompt."
    )
    cwd: Text | None = Field(default=None, description="Where it runs (absolute).")
    tags: Annotated[list[Name], Field(max_length=100)] = []
    capabilities: Annotated[list[Name], Field(max_length=100)] = []
    channels: Annotated[list[Name], Field(max_length=100)] = []
    restart: RestartPolicy = RestartPolicy.NO
    headless: bool = False
    approval: Annotated[str, Field(max_length=32)] | None = None
    env: Annotated[dict[str, str], Field(max_length=4096)] | None = Field(
        default=None, description="The program's environment (default: the relay's)."
    )
    task_id: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Headless: the task its exit finishes if it did not."
    )
    idle_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None


class SpawnedReleaseBody(Body):
    """How to stop a spawned agent."""

    model_config = _BUILT | examples({"reason": "done", "timeout": 10})

    reason: Annotated[str, Field(max_length=1000)] | None = None
    timeout: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=10.0, description="Seconds after SIGTERM before SIGKILL."
    )


class InputBody(Body):
    """Raw text for a spawned agent's terminal."""

    model_config = _BUILT | examples({"text": "/status", "enter": True})

    text: Annotated[str, Field(max_length=65536)]
    enter: bool = Field(default=False, description="Press Enter after the text.")


async def _supervisor(request: Request, call: ApiCall, action: str) -> Supervisor | Response:
    """The supervisor, once the caller is admin; a 501 response when there is none."""
    caller = await call.resolve()
    caller.require_admin(action)
    slot: SupervisorSlot | None = getattr(request.app.state, "supervisor", None)
    if slot is None:
        return problem(501, NO_SUPERVISOR, title="not implemented")
    return slot.get()


def _workspace(call: ApiCall) -> str:
    return call.caller().workspace


@router.post(
    "/v1/spawned",
    response_model=SpawnedAgent,
    status_code=201,
    responses={**responses(400, 409), **_501},
)
async def spawn(body: SpawnBody, request: Request, call: ApiCall) -> Response:
    """Start an agent program under the warm relay (admin). 409 if one of that name
    runs; 422 for bad input (neither or both of cli and command, an unknown cli, a
    command not found, a cwd that is not a folder)."""
    found = await _supervisor(request, call, "spawning an agent")
    if isinstance(found, Response):
        return found
    from ...runtime.spawn.spec import SpawnSpec

    fields: dict[str, Any] = body.model_dump()
    try:
        agent = await found.spawn(_workspace(call), SpawnSpec(**fields))
    except InvalidInput as exc:  # the body parsed, but cannot be run: 422
        return problem(422, exc.message, title="invalid input", extra=exc.to_dict())
    return render(agent, 201)


@router.get("/v1/spawned", response_model=list[SpawnedAgent], responses={**_501})
async def list_spawned(request: Request, call: ApiCall) -> Response:
    """The spawned agents of the workspace (admin)."""
    found = await _supervisor(request, call, "listing spawned agents")
    if isinstance(found, Response):
        return found
    return render_list(SPAWNED_LIST, found.agents(_workspace(call)))


@router.post(
    f"{_ONE}/release", response_model=SpawnedAgent, responses={**responses(400, 404), **_501}
)
async def release_spawned(
    name: str, body: SpawnedReleaseBody, request: Request, call: ApiCall
) -> Response:
    """Stop a spawned agent for good (admin): SIGTERM, then SIGKILL after ``timeout``
    seconds; it is not restarted and goes offline."""
    found = await _supervisor(request, call, "releasing a spawned agent")
    if isinstance(found, Response):
        return found
    agent = await found.release(_workspace(call), name, reason=body.reason, timeout=body.timeout)
    return render(agent)


@router.post(f"{_ONE}/input", status_code=204, responses={**responses(400, 404, 409), **_501})
async def send_input(name: str, body: InputBody, request: Request, call: ApiCall) -> Response:
    """Type raw text into a spawned agent's terminal (admin). 409: headless or not
    running."""
    found = await _supervisor(request, call, "typing into a spawned agent")
    if isinstance(found, Response):
        return found
    await found.send_input(_workspace(call), name, body.text, enter=body.enter)
    return Response(status_code=204)


@router.get(
    f"{_ONE}/screen", response_model=SpawnedScreen, responses={**responses(404, 409), **_501}
)
async def screen(name: str, request: Request, call: ApiCall) -> Response:
    """What a spawned agent's terminal shows now (admin). 409: headless."""
    found = await _supervisor(request, call, "reading a spawned agent's screen")
    if isinstance(found, Response):
        return found
    return render(found.screen(_workspace(call), name))


class LogLines(BaseModel):
    """The last lines of a spawned agent's output, escape sequences removed."""

    lines: list[str]


@router.get(f"{_ONE}/logs", response_model=LogLines, responses={**responses(400, 404), **_501})
async def logs(
    name: str,
    request: Request,
    call: ApiCall,
    lines: Annotated[int, Query(ge=0, le=10_000, description="How many lines.")] = 200,
) -> Response:
    """The last lines of a spawned agent's output (admin): ``{"lines": [...]}``."""
    found = await _supervisor(request, call, "reading a spawned agent's log")
    if isinstance(found, Response):
        return found
    return render(LogLines(lines=found.logs(_workspace(call), name, lines)))


@router.get(_ONE, response_model=SpawnedAgent, responses={**responses(404), **_501})
async def get_spawned(name: str, request: Request, call: ApiCall) -> Response:
    """One spawned agent (admin)."""
    found = await _supervisor(request, call, "reading a spawned agent")
    if isinstance(found, Response):
        return found
    return render(found.agent(_workspace(call), name))
