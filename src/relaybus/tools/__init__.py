"""The coding tools relaybus configures (Claude Code, Codex, Gemini CLI, Cursor):
their configuration (:mod:`.install`, ``relaybus install``), the Claude Code
hooks (:mod:`.hooks`), the checks of ``relaybus doctor`` (:mod:`.doctor`) and
the agent of a coding-agent session (:mod:`.session`)."""
