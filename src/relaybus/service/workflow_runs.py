"""Workflow runs: the state a workflow runner keeps in the store, one row per run.

A runner (``relaybus workflow run``) creates a run (``running``) with the workflow
file's name, path, SHA-256 ``digest`` and ``source``, then writes its ``state``
document after every change. Every update names the ``version`` it read and bumps it
(compare-and-set, in the UPDATE's WHERE clause, so on both dialects and on every
replica): of two runners writing the same run, exactly one wins and the other gets
:class:`~relaybus.errors.Conflict` saying the run moved on. That is how ``resume``
takes a run over from a killed runner, and how ``cancel`` stops a live one (its next
write is refused).

Statuses: ``running`` → ``done`` | ``failed`` | ``cancelled`` (``finished_at`` set).
A ``failed`` or ``cancelled`` run may go back to ``running`` (``resume``: retry the
step that failed, or carry on after a cancel; ``finished_at`` cleared); a ``done`` run
is over for good, and a finished run does not move to another finished status.

Events, in the change's transaction: ``workflow.started`` when a run is created or
resumed, ``workflow.finished`` when it leaves ``running``; data ``run_id``, ``name``,
``status`` (and ``resumed``). No agent is their actor, so only the admin sees them on
a stream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, InvalidInput, NotFound, TooLarge
from ..models import WorkflowRun, WorkflowRunStatus
from ..store.schema import workflow_runs
from .common import ServiceBase, append_event, check_choice, check_id, check_limit, check_text

#: A workflow's name, as the workflow file format has it (at most the column's width).
WORKFLOW_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,127}"
#: A SHA-256 digest in lower-case hex.
DIGEST_PATTERN = r"[0-9a-f]{64}"
#: Longest path of a workflow file, and of a runner's name (``host:pid``), in characters.
MAX_FILE_CHARS = 4096
MAX_RUNNER_CHARS = 255
#: Most nested levels of a run's ``state`` document (``{"a": 1}`` is 1 deep).
MAX_STATE_DEPTH = 64
#: The default and largest page of :meth:`WorkflowRunOps.list_runs`.
DEFAULT_RUNS = 50
MAX_RUNS = 1000

_NAME = re.compile(WORKFLOW_NAME_PATTERN)
_DIGEST = re.compile(DIGEST_PATTERN)
RUNNING = WorkflowRunStatus.RUNNING
#: What :func:`_plain_json` looks into.
_CONTAINERS = (dict, list, tuple)
_TEXT = frozenset({str})
#: A finished status from which ``resume`` may run the workflow again.
RESUMABLE = frozenset({WorkflowRunStatus.FAILED, WorkflowRunStatus.CANCELLED})


def run_from_row(row: Mapping[str, Any] | sa.RowMapping) -> WorkflowRun:
    """A ``workflow_runs`` row as a :class:`~relaybus.models.WorkflowRun`."""
    return WorkflowRun.model_validate(dict(row))


def digest_of(source: str) -> str:
    """The SHA-256 of ``source`` (UTF-8), lower-case hex: a run's default digest."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def check_workflow_name(name: str) -> str:
    """Raises InvalidInput unless ``name`` is a workflow's name (``[a-z0-9][a-z0-9._-]*``,
    1-128 characters)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid workflow name {name!r}: use 1-128 lower-case letters, digits and . _ -, "
            "starting with a letter or digit",
            field="name",
        )
    return name


def check_state(state: Mapping[str, Any] | None, limit: int) -> dict[str, Any]:
    """Validate a run's ``state``: a JSON object (text keys without NUL; null, booleans,
    finite numbers, text, lists and objects as values), at most
    :data:`MAX_STATE_DEPTH` levels deep and ``limit`` bytes as JSON.

    A runner writes its whole document on every change, so the usual case is checked
    in one pass of the C JSON encoder over the document plus a walk of its containers
    (keys, depth); only a document that fails that is walked value by value
    (:func:`_refuse_state`), for the refusal that names the bad value.

    Returns:
        the object as it will be read back (tuples become lists); ``{}`` for ``None``.

    Raises:
        InvalidInput: not an object, too deep, or a value JSON cannot hold.
        TooLarge: over ``limit`` bytes as JSON.
    """
    if state is None:
        return {}
    if not isinstance(state, Mapping):
        raise InvalidInput("a run's state is a JSON object", field="state")
    encoded = _plain_json(state)
    if encoded is None:
        _refuse_state(state)  # raises, unless the quick check was only wary
        encoded = json.dumps(dict(state), allow_nan=False)
    if len(encoded.encode("utf-8")) > limit:
        raise TooLarge(f"the run's state is over {limit} bytes as JSON", limit=limit)
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def _plain_json(state: Mapping[str, Any]) -> str | None:
    """``state`` as JSON (as the store writes it: ASCII) when it is plainly valid: dicts
    with text keys, lists and tuples at most :data:`MAX_STATE_DEPTH` deep, values the
    encoder takes (finite numbers), text without NUL or unpaired surrogates. ``None``
    when any of that fails or is in doubt (a literal ``\\u0000`` in a text)."""
    level: list[Any] = [state]
    for _ in range(MAX_STATE_DEPTH):  # level by level, the containers only: keys, depth
        below: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                if not set(map(type, value)) <= _TEXT:
                    return None  # the encoder would turn the key into text
                value = value.values()
            below += [item for item in value if isinstance(item, _CONTAINERS)]
        if not below:
            break
        level = below
    else:
        return None  # deeper than allowed
    try:
        text = json.dumps(state, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")  # an unpaired surrogate cannot be
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return None
    if "\\u0000" in text:  # a NUL (or a text that spells one out): walk it
        return None
    return text if text.isascii() else json.dumps(state, allow_nan=False)


def _refuse_state(state: Mapping[str, Any]) -> None:
    """Walk every value of ``state``; raise the refusal for the first bad one.

    Raises:
        InvalidInput: as :func:`check_state`.
    """
    stack: list[tuple[str, object, int]] = [("state", state, 1)]
    while stack:  # iterative: any depth is measured without recursion
        path, value, depth = stack.pop()
        if value is None or isinstance(value, bool | int):
            continue
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise InvalidInput(f"{path} is {value}: JSON numbers are finite", field="state")
            continue
        if isinstance(value, str):
            check_text(path, value)
            continue
        if not isinstance(value, Mapping | list | tuple):
            raise InvalidInput(f"{path} is a {type(value).__name__}, not a JSON value")
        if depth > MAX_STATE_DEPTH:
            raise InvalidInput(
                f"state is nested more than {MAX_STATE_DEPTH} levels deep", field="state"
            )
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"{path} has a key {key!r}: JSON keys are text")
                check_text(f"a key of {path}", key)
                stack.append((f"{path}.{key}", item, depth + 1))
        else:
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))


def _check_optional(field: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    check_text(field, value)
    if not 0 < len(value) <= limit:
        raise InvalidInput(f"{field} has 1-{limit} characters", field=field)
    return value


def _no_run(run_id: int) -> NotFound:
    return NotFound(f"no workflow run {run_id}", run=run_id)


class WorkflowRunOps(ServiceBase):
    """Workflow runs (see the module docstring)."""

    def create_run(
        self,
        workspace: str,
        *,
        name: str,
        source: str,
        digest: str | None = None,
        file: str | None = None,
        runner: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> WorkflowRun:
        """Record a new run of workflow ``name`` (status ``running``, version 1) and
        append ``workflow.started``.

        Args:
            source: the workflow file's text (at most ``settings.max_body_bytes``).
            digest: its SHA-256 in lower-case hex; default computed from ``source``.
            file: the workflow file's path, as the runner names it.
            runner: who runs it (``host:pid``); its heartbeat starts now.
            state: the runner's document (a JSON object, at most
                ``settings.body_limit()`` bytes).

        Raises:
            InvalidInput: a malformed name, digest, path, runner or state.
            TooLarge: the source or the state is too large.
        """
        check_workflow_name(name)
        check_text("source", source)
        limit = self.settings.max_body_bytes
        if len(source.encode("utf-8")) > limit:
            raise TooLarge(f"a workflow's source is at most {limit} bytes", limit=limit)
        if digest is None:
            digest = digest_of(source)
        elif not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise InvalidInput("a digest is a SHA-256 in 64 lower-case hex digits", field="digest")
        _check_optional("file", file, MAX_FILE_CHARS)
        _check_optional("runner", runner, MAX_RUNNER_CHARS)
        document = check_state(state, self.settings.body_limit())
        with self.store.write() as conn:
            now = self.now()
            run_id = int(
                conn.execute(
                    workflow_runs.insert()
                    .values(
                        workspace=workspace,
                        name=name,
                        file=file,
                        digest=digest,
                        source=source,
                        status=RUNNING.value,
                        runner=runner,
                        heartbeat_at=now if runner is not None else None,
                        state=document,
                        version=1,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(workflow_runs.c.id)
                ).scalar_one()
            )
            append_event(
                conn,
                workspace,
                "workflow.started",
                now,
                None,
                run_id=run_id,
                name=name,
                status=RUNNING.value,
                resumed=False,
            )
            return _read(conn, workspace, run_id)

    def get_run(self, workspace: str, run_id: int) -> WorkflowRun:
        """One run.

        Raises:
            InvalidInput: a malformed id.
            NotFound: no run ``run_id`` in ``workspace``.
        """
        check_id("run_id", run_id)
        with self.store.read() as conn:
            return _read(conn, workspace, run_id)

    def list_runs(
        self,
        workspace: str,
        *,
        name: str | None = None,
        status: WorkflowRunStatus | str | None = None,
        limit: int = DEFAULT_RUNS,
    ) -> list[WorkflowRun]:
        """Runs, newest first: of workflow ``name`` only, in ``status`` only, at most
        ``limit`` (1-1000).

        Raises:
            InvalidInput: a malformed name, an unknown status, a limit out of range.
        """
        query = sa.select(workflow_runs).where(workflow_runs.c.workspace == workspace)
        if name is not None:
            query = query.where(workflow_runs.c.name == check_workflow_name(name))
        if status is not None:
            chosen = check_choice(WorkflowRunStatus, "workflow run status", status)
            query = query.where(workflow_runs.c.status == chosen.value)
        query = query.order_by(workflow_runs.c.id.desc()).limit(check_limit(limit, MAX_RUNS))
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [run_from_row(r._mapping) for r in rows]

    def update_run(
        self,
        workspace: str,
        run_id: int,
        *,
        version: int,
        status: WorkflowRunStatus | str | None = None,
        state: Mapping[str, Any] | None = None,
        runner: str | None = None,
        heartbeat: bool = False,
    ) -> WorkflowRun:
        """Write run ``run_id``, which the caller read at ``version``: the version goes up
        by one, ``status``, ``state`` (replaced whole) and ``runner`` as given,
        ``heartbeat`` sets ``heartbeat_at`` to now. Leaving ``running`` sets
        ``finished_at`` and appends ``workflow.finished``; ``failed`` or ``cancelled``
        back to ``running`` (a resume) clears it and appends ``workflow.started``.

        Raises:
            InvalidInput: a malformed id or version, an unknown status, a bad state or
                runner, or nothing to update.
            NotFound: no run ``run_id`` in ``workspace``.
            Conflict: the run is at another version (someone else wrote it: read it
                again), or the status cannot go there (a ``done`` run is over; a
                finished run only goes back to ``running``).
            TooLarge: the state is too large.
        """
        check_id("run_id", run_id)
        check_id("version", version)
        chosen = None
        if status is not None:
            chosen = check_choice(WorkflowRunStatus, "workflow run status", status)
        _check_optional("runner", runner, MAX_RUNNER_CHARS)
        document = None if state is None else check_state(state, self.settings.body_limit())
        if not isinstance(heartbeat, bool):
            raise InvalidInput("heartbeat is true or false", field="heartbeat")
        if chosen is None and document is None and runner is None and not heartbeat:
            raise InvalidInput("nothing to update: give a status, state, runner or heartbeat")
        with self.store.write() as conn:
            now = self.now()
            row = _row(conn, workspace, run_id)
            if row["version"] != version:
                raise Conflict(
                    f"workflow run {run_id} is at version {row['version']}, not {version}: "
                    "someone else updated it (read it again)",
                    run=run_id,
                    version=row["version"],
                )
            current = WorkflowRunStatus(row["status"])
            values: dict[str, Any] = {"version": version + 1, "updated_at": now}
            if document is not None:
                values["state"] = document
            if runner is not None:
                values["runner"] = runner
            if heartbeat:
                values["heartbeat_at"] = now
            moved = chosen is not None and chosen != current
            if moved:
                assert chosen is not None
                _check_move(run_id, current, chosen)
                values["status"] = chosen.value
                values["finished_at"] = None if chosen is RUNNING else now
            # Compare-and-set in the statement too: the version read above is the one
            # replaced, whatever isolation the database gives this transaction.
            written = conn.execute(
                workflow_runs.update()
                .where(
                    workflow_runs.c.workspace == workspace,
                    workflow_runs.c.id == run_id,
                    workflow_runs.c.version == version,
                )
                .values(**values)
            ).rowcount
            if written != 1:
                raise Conflict(
                    f"workflow run {run_id} moved past version {version}: someone else "
                    "updated it (read it again)",
                    run=run_id,
                )
            if moved:
                assert chosen is not None
                append_event(
                    conn,
                    workspace,
                    "workflow.started" if chosen is RUNNING else "workflow.finished",
                    now,
                    None,
                    run_id=run_id,
                    name=row["name"],
                    status=chosen.value,
                    **({"resumed": True} if chosen is RUNNING else {}),
                )
            return _read(conn, workspace, run_id)


def prune_runs(conn: Connection, workspace: str, cutoff: float) -> int:
    """Delete the runs of ``workspace`` that finished (done, failed, cancelled) before
    ``cutoff`` (Unix seconds), in the caller's transaction (retention); returns how
    many. A running run is kept, however old: its runner may come back, or ``resume``."""
    finished = sa.and_(
        workflow_runs.c.workspace == workspace,
        workflow_runs.c.status != RUNNING.value,
        workflow_runs.c.finished_at < cutoff,
    )
    return int(conn.execute(workflow_runs.delete().where(finished)).rowcount)


def _check_move(run_id: int, current: WorkflowRunStatus, to: WorkflowRunStatus) -> None:
    """Raises Conflict unless a run may go from ``current`` to ``to`` (they differ)."""
    if current is RUNNING:
        return
    if to is RUNNING and current in RESUMABLE:
        return
    if current is WorkflowRunStatus.DONE:
        raise Conflict(f"workflow run {run_id} is done: a finished run is not run again")
    raise Conflict(
        f"workflow run {run_id} is {current.value}: it may only be resumed (status running)"
    )


def _row(conn: Connection, workspace: str, run_id: int) -> sa.RowMapping:
    row = conn.execute(
        sa.select(workflow_runs).where(
            workflow_runs.c.workspace == workspace, workflow_runs.c.id == run_id
        )
    ).first()
    if row is None:
        raise _no_run(run_id)
    return row._mapping


def _read(conn: Connection, workspace: str, run_id: int) -> WorkflowRun:
    return run_from_row(_row(conn, workspace, run_id))
