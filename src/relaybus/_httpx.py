"""httpx without its command line: one workaround, for every process that imports httpx.

httpx's ``__init__`` imports its command line (``from ._main import main``, which pulls
in click, rich and pygments) inside ``try/except ImportError``, falling back to a stub
that says the CLI is not installed. That import is about half the start-up time of a
relaybus command that talks to a relay server. A ``None`` entry in ``sys.modules`` makes
the import raise ImportError, so httpx takes its fallback; relaybus never runs the
``httpx`` command, so nothing is lost.

Checked against httpx 0.28.1 (uv.lock); ``tests/test_httpx_workaround.py`` fails if
httpx renames the module or no longer imports it on ``import httpx``. Standard library
only: the CLI and the workflows both import it before httpx.
"""

from __future__ import annotations

import sys

#: The module httpx imports for its command line, and for nothing else.
CLI_MODULE = "httpx._main"


def skip_httpx_cli() -> None:
    """Make a later ``import httpx`` skip httpx's command line (:data:`CLI_MODULE`).

    Does nothing once httpx is imported (its command line is then loaded, or skipped,
    already), so it is safe to call more than once.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault(CLI_MODULE, None)  # type: ignore[arg-type]
