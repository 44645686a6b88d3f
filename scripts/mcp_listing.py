"""Write ``src/relaybus/mcp/listing.json``: what the warm relay's ``/mcp`` answers to
``initialize`` and the listings (tools, prompts, resources, resource templates), which
``relaybus mcp`` (the bridge) answers itself while the relay starts.

Run: ``.venv/bin/python scripts/mcp_listing.py`` after changing a tool, the server's
instructions or capabilities, or the relaybus version; ``--check`` only compares and
exits 1 when the file is stale (tests/mcp/test_bridge.py runs it).

It starts a warm relay in a temporary folder, asks it over its socket (as the bridge
does, with ``X-Relaybus-Agent: relaybus-listing-agent``, the id the bridge replaces),
and stops it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from relaybus import __version__
from relaybus.client import warm
from relaybus.mcp.bridge import (
    AGENT_HEADER,
    ENDPOINT,
    LISTED,
    LISTING,
    LISTING_AGENT,
    SESSION_HEADER,
    VERSION_HEADER,
    events,
)


def ask(
    socket: Path, message: dict[str, Any], headers: dict[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    """POST ``message``: ``(the answer's message or None, the session id it carried)``."""
    connection = warm.UnixHTTPConnection(socket)
    try:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        connection.request("POST", ENDPOINT, body=body, headers=headers)
        response = connection.getresponse()
        session = response.getheader(SESSION_HEADER)
        if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
            found = [json.loads(data) for data in events(response)]
        else:
            raw = response.read()
            found = [json.loads(raw)] if raw.strip() else []
        return (found[-1] if found else None), session
    finally:
        connection.close()


def listing() -> dict[str, Any]:
    """What a warm relay of this checkout answers (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="rb-listing-"))
    relay_dir = folder / ".relay"
    try:
        socket = warm.ensure(relay_dir).socket
        latest = HANDSHAKE_PROTOCOL_VERSIONS[-1]
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            AGENT_HEADER: LISTING_AGENT,
        }
        client = {"name": "relaybus-listing", "version": __version__}
        params = {"protocolVersion": latest, "capabilities": {}, "clientInfo": client}
        initialized, session = ask(
            socket, {"id": 1, "method": "initialize", "params": params}, headers
        )
        assert initialized is not None and session is not None, initialized
        headers |= {SESSION_HEADER: session, VERSION_HEADER: latest}
        ask(socket, {"method": "notifications/initialized"}, headers)
        lists: dict[str, Any] = {}
        for number, method in enumerate(LISTED, start=2):
            answer, _ = ask(socket, {"id": number, "method": method}, headers)
            assert answer is not None and "result" in answer, (method, answer)
            lists[method] = answer["result"]
        warm.request(socket, "DELETE", ENDPOINT, headers=headers)
    finally:
        warm.stop(relay_dir)
        shutil.rmtree(folder, ignore_errors=True)
    result = dict(initialized["result"])
    result.pop("protocolVersion")  # negotiated per client (the bridge does it as the SDK)
    return {
        "relaybus": __version__,
        "handshake_versions": list(HANDSHAKE_PROTOCOL_VERSIONS),
        "initialize": result,
        "lists": lists,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args()
    text = json.dumps(listing(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    current = LISTING.read_text(encoding="utf-8") if LISTING.exists() else ""
    if args.check:
        if text != current:
            print(f"{LISTING} is stale: run `python scripts/mcp_listing.py`", file=sys.stderr)
            return 1
        return 0
    LISTING.write_text(text, encoding="utf-8")
    print(f"wrote {LISTING}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
