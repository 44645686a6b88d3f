"""Setting relaybus up in coding tools: ``install``, ``uninstall`` and ``doctor``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import render
from .app import get_app, json_option

if TYPE_CHECKING:
    from ..tools.doctor import Check
    from ..tools.install import Context, Report

TOOL_NAMES = ("claude", "codex", "gemini", "cursor")
SCOPES = ("local", "project", "user")

_tool = click.argument("tool", type=click.Choice(TOOL_NAMES), metavar="TOOL")
_scope = click.option(
    "--scope",
    type=click.Choice(SCOPES),
    help="Claude Code: local (default: you, this project), project (.mcp.json, shared) or "
    "user (you, every project). Codex: user only. Gemini CLI, Cursor: project (default) or user.",
)
_project = click.option(
    "--project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="The project folder (default: the current one).",
)
_dry_run = click.option(
    "--dry-run", is_flag=True, help="Print the diff of every file it would change; write nothing."
)


def _context(project: Path | None, trust: bool = False) -> Context:
    from ..tools.install import Context

    return Context.create(project=project, url=get_app().settings.url, trust=trust)


@click.command()
@_tool
@_scope
@_project
@_dry_run
@click.option(
    "--trust",
    is_flag=True,
    help="Gemini CLI: also trust the project folder (~/.gemini/trustedFolders.json); Gemini "
    "CLI starts no MCP server in a folder it does not trust. Uninstall takes it back.",
)
@json_option
def install(tool: str, scope: str | None, project: Path | None, dry_run: bool, trust: bool) -> None:
    """Set up relaybus in a coding tool: TOOL is claude, codex, gemini or cursor.

    Adds the MCP server "relaybus" (this relaybus's absolute path, `relaybus
    mcp`) to the tool's config, and for Claude Code the hooks that register
    the session and deliver its messages. Merges into existing files, backs
    each one up first (under ~/.local/state/relaybus/backups), and changes
    nothing when run again. RELAYBUS_URL, if set, goes into the entry; tokens
    never do.

    \b
    Where (scope → file):
      claude  local    ~/.claude.json (this project), .claude/settings.local.json
              project  .mcp.json, .claude/settings.json (Claude Code asks to approve)
              user     ~/.claude.json, ~/.claude/settings.json
      codex   user     ~/.codex/config.toml ($CODEX_HOME)
      gemini  project  .gemini/settings.json;  user ~/.gemini/settings.json
              (--trust: ~/.gemini/trustedFolders.json too)
      cursor  project  .cursor/mcp.json;       user ~/.cursor/mcp.json
    """
    from ..errors import InvalidInput
    from ..tools.install import TOOLS
    from ..tools.install import install as run_install

    app = get_app()
    if trust and tool != "gemini":
        raise InvalidInput(
            "--trust is for Gemini CLI's folder trust: relaybus install gemini --trust"
        )
    ctx = _context(project, trust)
    report = run_install(TOOLS[tool], ctx, scope=scope, dry_run=dry_run)
    _show(report, app.json)


@click.command()
@_tool
@_scope
@_project
@_dry_run
@json_option
def uninstall(tool: str, scope: str | None, project: Path | None, dry_run: bool) -> None:
    """Remove what `relaybus install TOOL` added, and nothing else.

    Takes out the relaybus MCP server entry (and Claude Code hooks), the
    containers and files install created once they are empty, and writes back
    a file's original bytes when nothing else in it changed. Without --scope:
    the scope relaybus was installed in for this project.
    """
    from ..tools.install import TOOLS
    from ..tools.install import uninstall as run_uninstall

    app = get_app()
    report = run_uninstall(TOOLS[tool], _context(project), scope=scope, dry_run=dry_run)
    _show(report, app.json)


@click.command()
@_project
@json_option
def doctor(project: Path | None) -> None:
    """Check the relaybus setup end to end and print what to fix.

    The relay (the embedded store, or the server at RELAYBUS_URL: reachable,
    same version, token accepted), and every tool with relaybus in its config:
    the command exists and is this relaybus, Claude Code's hooks are in place,
    a project's .mcp.json server is approved. Exit status 0 when all is well,
    1 when something needs fixing.
    """
    from ..tools.doctor import failed, run_checks

    app = get_app()
    checks = run_checks(app.settings, _context(project))
    bad = failed(checks)
    if app.json:
        render.emit_json({"ok": not bad, "checks": [c.to_json() for c in checks]})
    else:
        _show_checks(checks)
    if bad:
        click.get_current_context().exit(1)


def _show(report: Report, as_json: bool) -> None:
    if as_json:
        render.emit_json(report.to_json())
        return
    for f in report.files:
        if report.dry_run:
            if f.diff:
                click.echo(f.diff, nl=False)
            continue
        line = f"{f.action} {f.path}"
        if f.changes:
            line += ": " + "; ".join(f.changes)
        if f.restored:
            line += "; original bytes restored"
        if f.backup is not None:
            line += f" (backup: {f.backup})"
        click.echo(line)
    title, scope = report.tool.title, report.scope
    if report.dry_run:
        count = sum(f.action != "unchanged" for f in report.files)
        click.echo(f"dry run: nothing written; {count} file(s) would change")
    elif not report.changed and report.command == "install":
        click.echo(f"relaybus is already installed for {title} ({scope} scope): nothing changed")
    for note in report.notes:
        click.echo(f"note: {note}")
    for step in report.next:
        click.echo(f"next: {step}")


_MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


def _show_checks(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True, file=sys.stdout)
    for check in checks:
        mark, colour = _MARKS[check.status]
        line = Text()
        line.append(mark, style=f"bold {colour}")
        line.append(f" {check.name}: {check.detail}")
        console.print(line)
        if check.fix and check.status != "ok":
            console.print(
                Text(f"    fix: {check.fix}", style="dim" if check.status == "warn" else "")
            )
    problems = sum(c.status == "fail" for c in checks)
    warnings = sum(c.status == "warn" for c in checks)
    if problems:
        console.print(Text(f"{problems} problem(s) to fix", style="bold red"))
    else:
        extra = f" ({warnings} warning(s))" if warnings else ""
        console.print(Text(f"all good{extra}", style="bold green"))
