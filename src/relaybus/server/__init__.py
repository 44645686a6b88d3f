"""The relay server: the HTTP API, live delivery (SSE, WebSocket, long-poll), auth.

>>> from relaybus.server import create_app, serve

Names load on first use (PEP 562). The server's settings are
:class:`relaybus.settings.Settings` (host, port, token, limits…), like everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy_names

_EXPORTS = {
    "create_app": "relaybus.server.app",
    "serve": "relaybus.server.run",
}

if TYPE_CHECKING:
    from .app import create_app
    from .run import serve


__getattr__ = _lazy_names(__name__, _EXPORTS, globals())


__all__ = ["create_app", "serve"]
