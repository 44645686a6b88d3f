"""The ``relaybus`` console script.

``relaybus hook EVENT`` (run by Claude Code on every prompt and tool call)
goes straight to :mod:`relaybus.tools.hooks.command` (``pre-tool-use``, before every
tool call, to :mod:`relaybus.tools.hooks.gate`), which needs only
the standard library, and so does ``relaybus mcp`` when it bridges to the
warm local relay (:func:`relaybus.mcp.bridge.main`); everything else goes to
the click CLI (:func:`relaybus.cli.main`).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line and exit with its status."""
    argv = sys.argv[1:]
    if argv[:2] == ["hook", "pre-tool-use"] and not {"-h", "--help"} & set(argv):
        # Before every tool call: a tool no approval mode gates costs json alone.
        from .tools.hooks.gate import main as gate_main

        sys.exit(gate_main())
    if argv[:1] == ["hook"] and not {"-h", "--help"} & set(argv):
        from .tools.hooks.command import main as hook_main

        sys.exit(hook_main(argv[1:]))
    if argv[:1] == ["mcp"] and not {"-h", "--help"} & set(argv):
        from .mcp.bridge import main as bridge_main

        code = bridge_main(argv[1:])
        if code is not None:
            sys.exit(code)
    from .cli import main as cli_main

    cli_main()
