"""The PTY runner behind ``relaybus run``: any terminal program as an agent, with
messages typed into it when it is idle (see :mod:`.runner`)."""

from __future__ import annotations

from .runner import Runner, RunOptions, run

__all__ = ["RunOptions", "Runner", "run"]
