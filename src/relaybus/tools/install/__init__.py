"""``relaybus install`` / ``uninstall``: relaybus's MCP server (and Claude Code's
hooks) in the config files of Claude Code, Codex, Gemini CLI and Cursor.

>>> from relaybus.tools.install import Context, TOOLS, install
>>> report = install(TOOLS["claude"], Context.create(), scope="local", dry_run=True)
>>> print(report.files[0].diff)

Edits merge into existing files and never clobber what is there; every
changed file is backed up first (see :mod:`.manifest`), and uninstall removes
exactly what install added.
"""

from ...identity import state_dir
from .base import SERVER_NAME, ConfigFile, Context, Tool
from .claude import ClaudeTool
from .codex import CodexTool
from .cursor import CursorTool
from .files import ConfigError
from .gemini import GeminiTool
from .manifest import Manifest
from .run import FileReport, Report, SetupError, install, uninstall

#: Every tool relaybus can be installed into, by command-line name.
TOOLS: dict[str, Tool] = {
    tool.name: tool for tool in (ClaudeTool(), CodexTool(), GeminiTool(), CursorTool())
}

__all__ = [
    "SERVER_NAME",
    "TOOLS",
    "ConfigError",
    "ConfigFile",
    "Context",
    "FileReport",
    "Manifest",
    "Report",
    "SetupError",
    "Tool",
    "install",
    "state_dir",
    "uninstall",
]
