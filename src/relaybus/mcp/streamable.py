"""Streamable HTTP as the ``relaybus mcp`` bridge and the relay's ``/mcp`` speak it:
the endpoint, the header names, the header values (the session identity's encoding,
MCP's header value encoding) and the server-sent events of an answer.

Standard library only, as :mod:`relaybus.mcp.bridge` (which re-exports these
names); the relay's side (:mod:`relaybus.server.mcp`) reads the same headers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path

from .. import identity as ident

# Not ``from typing import ...``: the bridge starts lean; type checkers treat
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from collections.abc import Iterator, Mapping
    from typing import Any

#: The relay's MCP endpoint.
ENDPOINT = "/mcp"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
AGENT_HEADER = "X-Relaybus-Agent"
WORKSPACE_HEADER = "X-Relaybus-Workspace"
#: The coding-agent session a bridge serves (:func:`session_header`).
SESSION_IDENTITY_HEADER = "X-Relaybus-Session"
#: Where a 2026-07-28 request names its protocol version.
VERSION_META = "io.modelcontextprotocol/protocolVersion"
#: Methods whose named parameter a 2026-07-28 request repeats in ``Mcp-Name``.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

# Patterns, not compiled ones: ``re`` compiles them on the first header that needs
# them (a 2026-07-28 request's), not at every bridge start (~0.15 ms).
_HEADER_SAFE = r"[\x20-\x7E]*"
_B64_SENTINEL = r"=\?base64\?.*\?="


def session_header(identity: ident.SessionIdentity, hook_socket: Path | None = None) -> str:
    """The ``X-Relaybus-Session`` value: ``identity`` and where the session's hook
    commands look for their host (:func:`relaybus.identity.session_socket` in the
    bridge's environment, which the relay's need not share), as JSON, base64url
    (a header value is ASCII; a label or a folder need not be)."""
    doc = {"identity": identity.to_dict(), "hook_socket": hook_socket and str(hook_socket)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode("utf-8")).decode("ascii")


def parse_session_header(value: str) -> tuple[ident.SessionIdentity, Path | None]:
    """The identity and hook socket :func:`session_header` wrote.

    Raises:
        InvalidInput: ``value`` is not such a header.
    """
    try:
        doc = json.loads(base64.urlsafe_b64decode(value).decode("utf-8"))
        identity = ident.SessionIdentity.from_json(json.dumps(doc["identity"]))
        socket = doc.get("hook_socket")
        return identity, Path(socket) if isinstance(socket, str) and socket else None
    except (ValueError, binascii.Error, KeyError, TypeError, AttributeError) as exc:
        from ..errors import InvalidInput

        raise InvalidInput(
            f"a malformed {SESSION_IDENTITY_HEADER} header: {exc}", field=SESSION_IDENTITY_HEADER
        ) from None


def header_value(value: str) -> str:
    """``value`` as an MCP header carries it: verbatim when it is plain printable
    ASCII, else ``=?base64?…?=`` (the 2026-07-28 revision's rule, as the SDK's
    ``encode_header_value``)."""
    if (
        re.fullmatch(_HEADER_SAFE, value)
        and value == value.strip()
        and not re.fullmatch(_B64_SENTINEL, value)
    ):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def is_modern(params: Mapping[str, Any]) -> bool:
    """Whether request ``params`` are a 2026-07-28 request's (they name the version)."""
    meta = params.get("_meta")
    return isinstance(meta, dict) and VERSION_META in meta


def events(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The ``data`` of each server-sent event of ``response`` (events without
    data, such as a stream's priming event, are skipped)."""
    data: list[bytes] = []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
