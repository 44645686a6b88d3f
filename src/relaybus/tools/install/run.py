"""``install`` and ``uninstall``: plan every file first, then back up, write and record.

Every file is read and changed in memory before anything is written, so a
malformed file anywhere stops the command with nothing changed. A dry run stops
after the plan and reports unified diffs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...errors import InvalidInput, RelayError
from ...identity import state_dir
from .base import ConfigFile, Context, EditOutcome, Tool
from .files import ConfigError, delete_file, read_text, unified_diff, write_text
from .manifest import FileRecord, InstallRecord, Manifest, new_stamp

Action = Literal["created", "updated", "deleted", "unchanged"]


class SetupError(RelayError):
    """A config file or the state folder cannot be written (permissions, disk)."""

    title = "setup error"


@dataclass
class FileReport:
    """What happened (or, in a dry run, would happen) to one file.

    ``restored``: uninstall wrote back the file's bytes from before install
    (its content matched them once relaybus's part was gone).
    """

    path: Path
    action: Action
    changes: list[str] = field(default_factory=list)
    backup: Path | None = None
    diff: str = ""
    restored: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": str(self.path),
            "action": self.action,
            "changes": self.changes,
            "backup": None if self.backup is None else str(self.backup),
        }
        if self.diff:
            data["diff"] = self.diff
        if self.restored:
            data["restored"] = True
        return data


@dataclass
class Report:
    """The result of one install or uninstall: per-file reports, what to do next."""

    command: Literal["install", "uninstall"]
    tool: Tool
    scope: str
    project: Path | None
    dry_run: bool
    files: list[FileReport]
    next: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether any file changed (or would, in a dry run)."""
        return any(f.action != "unchanged" for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "tool": self.tool.name,
            "scope": self.scope,
            "project": None if self.project is None else str(self.project),
            "dry_run": self.dry_run,
            "changed": self.changed,
            "files": [f.to_json() for f in self.files],
            "next": self.next,
            "notes": self.notes,
        }


@dataclass
class _Plan:
    file: ConfigFile
    before: str | None
    after: str | None
    changes: list[str]
    created: list[tuple[str, ...]]
    restored: bool = False

    @property
    def action(self) -> Action:
        if not self.changes:
            return "unchanged"
        if self.before is None:
            return "created"
        return "deleted" if self.after is None else "updated"


def install(
    tool: Tool,
    ctx: Context,
    *,
    scope: str | None = None,
    dry_run: bool = False,
    state: Path | None = None,
) -> Report:
    """Add relaybus to ``tool``'s config in ``scope`` (default: the tool's own).

    Idempotent: a second run finds everything in place and changes nothing.

    Raises:
        InvalidInput: no such scope for the tool; the relaybus executable is missing.
        ConfigError: a config file or the manifest is malformed (nothing written).
        SetupError: a file cannot be written.
    """
    scope = tool.check_scope(scope)
    exe = Path(ctx.executable)
    if not (exe.is_absolute() and exe.is_file() and os.access(exe, os.X_OK)):
        raise InvalidInput(
            f"the relaybus command is not at {exe}: install relaybus as a command "
            "(pip install relaybus, or uv tool install relaybus) and run this again",
            executable=str(exe),
        )
    plans = []
    for f in tool.files(scope, ctx):
        before = read_text(f.path)
        outcome = f.install(before)
        plans.append(_Plan(f, before, outcome.text, outcome.changes, outcome.created))
    report = _report("install", tool, scope, ctx, dry_run, plans)
    if dry_run:
        return report
    folder = state or state_dir(ctx.env)
    manifest = Manifest.load(folder)
    key = (tool.name, scope, _project_key(tool, scope, ctx))
    record = manifest.find(*key) or InstallRecord(*key)
    if record not in manifest.records:
        manifest.records.append(record)
    _commit(plans, report, manifest, record, uninstall=False)
    report.next = tool.next_steps(scope, ctx) if report.changed else []
    report.next.append("check the setup any time with `relaybus doctor`")
    return report


def uninstall(
    tool: Tool,
    ctx: Context,
    *,
    scope: str | None = None,
    dry_run: bool = False,
    state: Path | None = None,
) -> Report:
    """Remove what ``install`` added to ``tool``'s config in ``scope``.

    Without ``scope``: the one scope the manifest records for this tool and
    project, else the tool's default scope. Removes the relaybus entries
    (recognised by name and command, so it works without a manifest too), the
    containers and files install created once they are empty, and writes back
    a file's original bytes when its content is then what it was before install.

    Raises:
        InvalidInput: no such scope for the tool.
        ConfigError: a config file or the manifest is malformed (nothing written).
        SetupError: a file cannot be written.
    """
    folder = state or state_dir(ctx.env)
    manifest = Manifest.load(folder)
    here = [r for r in manifest.records_for(tool.name) if r.project in (None, str(ctx.project))]
    notes = []
    if scope is None:
        scope = here[0].scope if len(here) == 1 else tool.default_scope
        for other in here:
            if other.scope != scope:
                notes.append(
                    f"relaybus is also installed in the {other.scope} scope: "
                    f"relaybus uninstall {tool.name} --scope {other.scope}"
                )
    scope = tool.check_scope(scope)
    record = manifest.find(tool.name, scope, _project_key(tool, scope, ctx))
    recorded = {r.path for r in record.files} if record else set()
    files = tool.files(scope, ctx)
    files += [
        f
        for f in tool.optional_files(scope, ctx)
        if f.path in recorded and all(f.path != g.path for g in files)
    ]
    plans = []
    for f in files:
        before = read_text(f.path)
        if before is None:
            plans.append(_Plan(f, None, None, [], []))
            continue
        rec = record.file(f.path) if record else None
        outcome = f.uninstall(before, rec.created_keys if rec else [])
        plans.append(_undo_plan(f, before, outcome, rec, manifest))
    report = _report("uninstall", tool, scope, ctx, dry_run, plans)
    report.notes = notes
    if not report.changed:
        report.notes.insert(0, f"relaybus is not installed for {tool.title} in the {scope} scope")
    if dry_run:
        return report
    _commit(plans, report, manifest, record, uninstall=True)
    if report.changed:
        report.next = [f"running {tool.title} sessions keep relaybus until they end"]
    return report


def _undo_plan(
    f: ConfigFile, before: str, outcome: EditOutcome, rec: FileRecord | None, manifest: Manifest
) -> _Plan:
    plan = _Plan(f, before, outcome.text, outcome.changes, [])
    if not outcome.changes or outcome.text is None:
        return plan
    if rec is not None and rec.created_file and f.is_empty(outcome.text):
        plan.after = None
        return plan
    wanted = f.parse(outcome.text)
    for backup in manifest.backups_of(f.path):
        try:
            original = read_text(backup)
            if original is not None and f.parse(original) == wanted:
                plan.after, plan.restored = original, True
                break
        except (ConfigError, OSError):
            continue  # a damaged or missing backup: fall back to the edited text
    return plan


def _report(
    command: Literal["install", "uninstall"],
    tool: Tool,
    scope: str,
    ctx: Context,
    dry_run: bool,
    plans: list[_Plan],
) -> Report:
    files = [
        FileReport(
            path=p.file.path,
            action=p.action,
            changes=p.changes,
            diff=unified_diff(p.file.path, p.before, p.after) if dry_run and p.changes else "",
            restored=p.restored,
        )
        for p in plans
    ]
    project = ctx.project if tool.uses_project(scope) else None
    return Report(command, tool, scope, project, dry_run, files)


def _commit(
    plans: list[_Plan],
    report: Report,
    manifest: Manifest,
    record: InstallRecord | None,
    *,
    uninstall: bool,
) -> None:
    """Back up, write or delete each changed file, and save the manifest (also
    after a failed write, so that what was written can still be uninstalled)."""
    stamp: str | None = None
    wrote = False
    failure: SetupError | None = None
    try:
        for plan, file_report in zip(plans, report.files, strict=True):
            if not plan.changes:
                continue
            path = plan.file.path
            rec = record.file(path) if record else None
            if plan.before is not None:
                stamp = stamp or new_stamp(manifest.folder)
                file_report.backup = manifest.backup(path, stamp)
            if plan.after is None:
                delete_file(path)
                manifest.remove_empty_dirs(path)
            else:
                manifest.add_dirs(write_text(path, plan.after))
            wrote = True
            if uninstall or record is None:
                continue
            if rec is None:
                rec = FileRecord(path)
                record.files.append(rec)
            if plan.before is None:
                rec.created_file = True
            elif file_report.backup is not None:
                rec.backups.append(file_report.backup)
            rec.created_keys += [k for k in plan.created if k not in rec.created_keys]
    except OSError as exc:
        where = exc.filename or "a file"
        failure = SetupError(f"cannot write {where}: {exc.strerror or exc}", path=str(where))
    if record is not None and uninstall and failure is None:
        manifest.remove(record)
        wrote = True
    elif record is not None and not record.files:
        manifest.remove(record)  # an install that changed nothing leaves no record
    if wrote:
        try:
            manifest.save()
        except OSError as exc:
            failure = failure or SetupError(f"cannot write {manifest.path}: {exc.strerror}")
    if failure is not None:
        raise failure


def _project_key(tool: Tool, scope: str, ctx: Context) -> str | None:
    return str(ctx.project) if tool.uses_project(scope) else None
