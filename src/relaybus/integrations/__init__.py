"""Agent integrations: tool configuration (``relaybus install``), the Claude Code
hooks, and the checks of ``relaybus doctor``."""
