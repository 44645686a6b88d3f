"""The relay server: the HTTP API, live delivery (SSE, WebSocket, long-poll), auth.

>>> from relaybus.server import ServerConfig, create_app, serve

Names load on first use (PEP 562): importing the config does not import FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ServerConfig": "relaybus.server.config",
    "create_app": "relaybus.server.app",
    "serve": "relaybus.server.run",
}

if TYPE_CHECKING:
    from .app import create_app
    from .config import ServerConfig
    from .run import serve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relaybus.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["ServerConfig", "create_app", "serve"]
