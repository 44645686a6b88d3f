"""Approval modes for programs a runtime starts: the Codex CLI's own flags per mode.

Codex enforces approval itself, so ``relaybus run -- codex`` gives it the flags of
the agent's approval mode (:class:`relaybus.models.Approval`), from the help text of
Codex CLI 0.171.0 (``codex --help``: ``-s/--sandbox`` read-only | workspace-write |
danger-full-access; ``-a/--ask-for-approval`` on-request | never):

=============  ==================================================  ==========================
mode           flags                                               what Codex then does
=============  ==================================================  ==========================
``open``       none                                                its own config decides
``guarded``    ``--sandbox read-only --ask-for-approval on-request``  reads freely; asks the user
                                                                   before it edits a file or
                                                                   runs a command outside the
                                                                   read-only sandbox (Codex's
                                                                   "Read Only" preset)
``read-only``  ``--sandbox read-only --ask-for-approval never``    reads; what would write
                                                                   fails and goes back to the
                                                                   model, nobody is asked
=============  ==================================================  ==========================

The flags go right after the program (Codex's top-level options, which ``codex exec``
and the other subcommands accept there too). A flag the user gave is never added
again, nor one that another given option decides (``--dangerously-bypass-approvals-
and-sandbox``, ``--approve-for-me``, ``-c sandbox_mode=…``, ``-c approval_policy=…``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..presets import CODEX_POLICY

#: The programs whose flags :func:`preset_flags` sets.
CODEX = "codex"
#: Options that decide both the sandbox and the approval policy.
_BOTH = ("--dangerously-bypass-approvals-and-sandbox", "--yolo", "--full-auto", "--approve-for-me")


def _given(args: Sequence[str], short: str, long: str, config_key: str) -> bool:
    """Whether ``args`` (before any ``--``) set an option: ``-s X``, ``-sX``,
    ``--sandbox X``, ``--sandbox=X``, ``-c KEY=…`` / ``--config KEY=…``, or one of
    :data:`_BOTH`."""
    for n, arg in enumerate(args):
        if arg == "--":
            break
        if arg in _BOTH or arg == long or arg.startswith((long + "=", short)):
            return True
        if arg in ("-c", "--config"):
            setting = args[n + 1] if n + 1 < len(args) else ""
        elif arg.startswith("--config="):
            setting = arg.removeprefix("--config=")
        elif arg.startswith("-c"):
            setting = arg[2:]
        else:
            continue
        if setting.strip().startswith(config_key):
            return True
    return False


def preset_flags(command: Sequence[str], approval: str | None) -> list[str]:
    """``command`` with the approval flags of mode ``approval`` (``open``, ``guarded``,
    ``read-only``; None: none) when its program is ``codex`` (see the module
    docstring); any other command unchanged."""
    argv = list(command)
    if not argv or approval is None or Path(argv[0]).name != CODEX:
        return argv
    sandbox, policy = CODEX_POLICY.get(approval, (None, None))
    args = argv[1:]
    flags: list[str] = []
    if sandbox is not None and not _given(args, "-s", "--sandbox", "sandbox_mode"):
        flags += ["--sandbox", sandbox]
    if policy is not None and not _given(args, "-a", "--ask-for-approval", "approval_policy"):
        flags += ["--ask-for-approval", policy]
    return [argv[0], *flags, *args]
