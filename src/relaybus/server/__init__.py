"""The relay server: the HTTP API, live delivery (SSE, WebSocket, long-poll), auth.

>>> from relaybus.server import create_app, serve

Names load on first use (PEP 562). The server's settings are
:class:`relaybus.settings.Settings` (host, port, token, limits…), like everything else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "create_app": "relaybus.server.app",
    "serve": "relaybus.server.run",
}

if TYPE_CHECKING:
    from .app import create_app
    from .run import serve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relaybus.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["create_app", "serve"]
