"""How one relay server runs: address, admin token, limits (:class:`ServerConfig`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidInput
from ..settings import Settings

#: Room for a request's JSON around a message body of ``max_body_bytes``: field
#: names, a subject, meta and escaping (bytes).
ENVELOPE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of one server process.

    Attributes:
        host, port: where to listen.
        admin_token: the bearer token that acts as anyone in any workspace;
            ``None`` means open mode (every request is admin), allowed on
            loopback only (see :meth:`check_bind`).
        metrics_token: a bearer token that may read ``/metrics`` and nothing
            else. ``/metrics`` is open only when neither this nor
            ``admin_token`` is set; otherwise it needs one of the two.
        max_body_bytes: the largest request body (bytes) before 413; ``None``
            derives it from the relay settings (:meth:`body_limit`).
        rate_limit: requests per second per token (or per client address for
            requests without a token); ``None`` is no limit.
        rate_burst: requests a token may make at once before the rate applies.
        sse_heartbeat_seconds: how often an idle event stream gets a ping.
        longpoll_max_seconds: the longest ``?wait=`` honoured (longer waits are
            cut to this).
        token_cache_seconds: how long an agent token's lookup is reused; a
            token revoked by another process keeps working this long on this
            server at most (revocations made through this server apply at once).
            0 looks every request's token up in the store.
        mcp_idle_seconds: an MCP session at ``/mcp`` with no request in flight
            for this long has ended (its agent goes offline).
        sweep_interval: seconds between background sweeps (lapsed leases,
            stale agents; see :mod:`relaybus.server.sweeper`); 0: none.
            ``relaybus serve`` takes it from ``Settings.sweep_interval``.
        prune_interval: seconds between background retention prunes; 0: none.
    """

    host: str = "127.0.0.1"
    port: int = 4850
    admin_token: str | None = None
    metrics_token: str | None = None
    max_body_bytes: int | None = None
    rate_limit: float | None = None
    rate_burst: int = 50
    sse_heartbeat_seconds: float = 15.0
    longpoll_max_seconds: float = 300.0
    token_cache_seconds: float = 1.0
    mcp_idle_seconds: float = 30 * 60.0
    sweep_interval: float = 0.0
    prune_interval: float = 0.0

    @property
    def auth_mode(self) -> Literal["open", "token"]:
        """``"token"`` when an admin token is set, else ``"open"``."""
        return "open" if self.admin_token is None else "token"

    def body_limit(self, settings: Settings) -> int:
        """The request body limit (bytes): :attr:`max_body_bytes`, or room for a
        message of ``settings.max_body_bytes`` with its meta and JSON escaping."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return settings.max_body_bytes * 2 + ENVELOPE_BYTES

    def check_bind(self) -> None:
        """Refuse to serve a non-loopback address without an admin token.

        Raises:
            InvalidInput: :attr:`host` is not a loopback address and there is no
                admin token, or a limit is out of range.
        """
        if self.admin_token is None and not is_loopback(self.host):
            raise InvalidInput(
                f"refusing to listen on {self.host} without an admin token: anyone who can "
                "reach it could act as any agent. Set RELAYBUS_TOKEN (or --token), or listen "
                "on 127.0.0.1",
                host=self.host,
            )
        if self.admin_token is not None and not self.admin_token.strip():
            raise InvalidInput("the admin token is empty")
        if self.metrics_token is not None and not self.metrics_token.strip():
            raise InvalidInput("the metrics token is empty")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise InvalidInput("the rate limit is a number of requests per second above 0")
        if not self.mcp_idle_seconds > 0:
            raise InvalidInput("the MCP session idle timeout is a number of seconds above 0")
        if self.rate_burst < 1:
            raise InvalidInput("the rate burst is at least 1 request")
        if not 0 <= self.port <= 65535:
            raise InvalidInput(f"port {self.port} is not between 0 and 65535")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.x``, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything
