"""Claude Code hooks: deliver relay messages into a running Claude Code session.

``relaybus install claude`` adds six hook commands to Claude Code's settings
(``relaybus hook session-start|user-prompt-submit|post-tool-use|stop|session-end``,
and ``pre-tool-use``, the approval gate of :mod:`.gate`).
Each reads Claude Code's hook input JSON on stdin and prints its output JSON
(https://code.claude.com/docs/en/hooks).

Hook commands run on every prompt and after every tool call, so they must be
fast: :mod:`.command` imports only the standard library and hands the event to
the session's own ``relaybus mcp`` process over a Unix socket (:mod:`.host`),
which has the relay open already and runs :mod:`.logic`. Without that process
the command runs :mod:`.logic` itself, slower but with the same result.
"""
