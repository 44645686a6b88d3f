"""How to start each agent CLI: its flags for a model, an approval mode, an initial
task and non-interactive use (the presets), and a preflight check that it is there.

Skeleton (issue 19): the lead's stub, replaced by the presets' owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ...errors import InvalidInput
from ...models import Preflight

#: The preset CLIs ``--cli`` accepts.
CLIS = ("claude", "codex", "gemini", "opencode")


def build_command(
    cli: str,
    *,
    model: str | None = None,
    task: str | None = None,
    headless: bool = False,
    approval: str | None = None,
    args: Sequence[str] = (),
) -> list[str]:
    """The argv that starts ``cli`` (one of :data:`CLIS`) with these settings.

    Raises:
        InvalidInput: an unknown CLI.
    """
    raise InvalidInput(f"no preset for {cli!r} yet")


def preflight(clis: Iterable[str], *, env: Mapping[str, str] | None = None) -> list[Preflight]:
    """Whether each CLI is on ``env``'s PATH and answers ``--version``."""
    return [Preflight(cli=cli, ok=False, error="not checked yet") for cli in clis]
