"""The HTTP requests of the spawned agents' operations (issue 19), described once (as
:mod:`relaybus.client.operations` describes the rest): spawn, list, read, release,
type into, read the screen and the log of an agent program the warm local relay
supervises. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .request import Request, json_body, segment


def _path(name: str, rest: str = "") -> str:
    return f"/v1/spawned/{segment(name)}{rest}"


def spawn(
    name: str,
    *,
    workspace: str,
    cli: str | None = None,
    command: Sequence[str] | None = None,
    model: str | None = None,
    task: str | None = None,
    cwd: str | None = None,
    tags: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    channels: Sequence[str] = (),
    restart: str = "no",
    headless: bool = False,
    approval: str | None = None,
    env: Mapping[str, str] | None = None,
    task_id: int | None = None,
    idle_seconds: float | None = None,
) -> Request:
    """``POST /v1/spawned``: start agent program ``name`` (admin)."""
    body = json_body(
        name=name,
        cli=cli,
        command=None if command is None else list(command),
        model=model,
        task=task,
        cwd=cwd,
        tags=list(tags) or None,
        capabilities=list(capabilities) or None,
        channels=list(channels) or None,
        restart=restart,
        headless=headless,
        approval=approval,
        env=None if env is None else dict(env),
        task_id=task_id,
        idle_seconds=idle_seconds,
    )
    return Request("POST", "/v1/spawned", workspace=workspace, body=body)


def list_spawned(*, workspace: str) -> Request:
    """``GET /v1/spawned``: the spawned agents of the workspace."""
    return Request("GET", "/v1/spawned", workspace=workspace)


def get_spawned(name: str, *, workspace: str) -> Request:
    """``GET /v1/spawned/{name}``."""
    return Request("GET", _path(name), workspace=workspace)


def release_spawned(
    name: str, *, workspace: str, reason: str | None = None, timeout: float = 10.0
) -> Request:
    """``POST /v1/spawned/{name}/release``: SIGTERM, then SIGKILL after ``timeout`` s."""
    body = json_body(reason=reason, timeout=timeout)
    return Request("POST", _path(name, "/release"), workspace=workspace, body=body)


def send_input(name: str, text: str, *, workspace: str, enter: bool = False) -> Request:
    """``POST /v1/spawned/{name}/input``: raw text typed into its terminal."""
    body = {"text": text, "enter": enter}
    return Request("POST", _path(name, "/input"), workspace=workspace, body=body)


def screen(name: str, *, workspace: str) -> Request:
    """``GET /v1/spawned/{name}/screen``: what its terminal shows."""
    return Request("GET", _path(name, "/screen"), workspace=workspace)


def logs(name: str, *, workspace: str, lines: int = 200) -> Request:
    """``GET /v1/spawned/{name}/logs?lines=N``: the last lines of its output."""
    return Request("GET", _path(name, "/logs"), workspace=workspace, params={"lines": lines})
