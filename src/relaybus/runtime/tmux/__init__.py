"""The tmux adapter: an agent bound to a tmux pane, its messages typed into the
pane when the pane is idle (``relaybus tmux attach``), and the pane's screen on
demand (``relaybus tmux look``).

- :mod:`.server`: :class:`TmuxServer` (which socket; one-shot commands, pane
  lookup, ``capture-pane``) and the errors.
- :mod:`.control`: :class:`ControlClient`, a tmux control-mode client: commands
  with replies and pane output as events.
- :mod:`.inject`: typing a message into a pane (``send-keys -l`` chunks or a
  bracketed-paste-aware ``paste-buffer -p``, then Enter) and whether it can take keys.
- :mod:`.binding`: :class:`Binding`, the pane recorded in the agent's ``meta["tmux"]``;
  :func:`bind` registers an agent bound to a pane; :func:`look` reads its screen.
- :mod:`.attach`: :class:`PaneAgent`, the delivery loop on the shared runtime core.
"""

from __future__ import annotations

from .attach import Ending, PaneAgent
from .binding import META_KEY, Binding, bind, look
from .control import CommandFailed, ControlClient, ControlClosed
from .server import NoServer, Pane, PaneNotFound, TmuxError, TmuxServer

__all__ = [
    "META_KEY",
    "Binding",
    "CommandFailed",
    "ControlClient",
    "ControlClosed",
    "Ending",
    "NoServer",
    "Pane",
    "PaneAgent",
    "PaneNotFound",
    "TmuxError",
    "TmuxServer",
    "bind",
    "look",
]
