"""The answers the ``relaybus mcp`` bridge gives itself, before the warm relay does:
``initialize`` and the listings (tools, prompts, resources, resource templates),
from ``listing.json``, what the relay answers to them at this relaybus version.

``scripts/mcp_listing.py`` writes the file; a test holds it to the relay's answers.
Standard library only, as :mod:`relaybus.mcp.bridge` (which re-exports these names).
"""

from __future__ import annotations

import json
from pathlib import Path

from .streamable import is_modern

# Not ``from typing import ...``: the bridge starts lean; type checkers treat
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: What the relay answers to ``initialize`` and the :data:`LISTED` requests at this version
#: (``scripts/mcp_listing.py`` writes it; a test holds it to the relay's answers).
LISTING = Path(__file__).with_name("listing.json")
#: The agent id the listing's instructions name, replaced by the session's.
LISTING_AGENT = "relaybus-listing-agent"
#: The listings a client asks for right after ``initialize`` (Claude Code calls a
#: server ready, and gives the model its tools, once it has all it announced).
LISTED = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")


def load_listing(path: Path = LISTING) -> dict[str, Any] | None:
    """The :data:`LISTING` if it is this relaybus version's, else None."""
    from .. import __version__

    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("relaybus") == __version__ else None


def initialize_answer(
    listing: Mapping[str, Any], message: Mapping[str, Any], agent_id: str
) -> dict[str, Any] | None:
    """The answer to a handshake-era ``initialize`` ``message`` from ``listing``
    (the version negotiated as the SDK's server does; the instructions name
    ``agent_id``), or None for a request the relay must answer (a 2026-07-28 one)."""
    params = message.get("params")
    if not isinstance(params, dict) or is_modern(params):
        return None
    versions = listing["handshake_versions"]
    requested = params.get("protocolVersion")
    result = dict(listing["initialize"])
    result["protocolVersion"] = requested if requested in versions else versions[-1]
    result["instructions"] = result["instructions"].replace(LISTING_AGENT, agent_id)
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}


def list_answer(
    listing: Mapping[str, Any], method: str, message: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The answer to a :data:`LISTED` request ``message`` (its ``method``) from
    ``listing`` (no cursor: each list has one page), or None for one the relay must
    answer (a notification, a cursor, a 2026-07-28 request)."""
    params = message.get("params") or {}
    if "id" not in message:
        return None
    if not isinstance(params, dict) or set(params) - {"_meta"} or is_modern(params):
        return None
    return {"jsonrpc": "2.0", "id": message["id"], "result": listing["lists"][method]}
