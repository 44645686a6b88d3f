"""Settings: one typed object, read from ``RELAYBUS_*`` environment variables.

CLI options bind to the same fields (``relaybus --dir``, ``--as``), so a value
has one name everywhere: ``RELAYBUS_DIR`` / ``--dir`` / ``Settings.dir``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """relaybus configuration.

    Durations are seconds, sizes are bytes, retention is days.
    """

    model_config = SettingsConfigDict(env_prefix="RELAYBUS_", extra="ignore")

    dir: Path | None = Field(
        default=None,
        description="The relay directory holding relay.db; default: .relay in the repository root.",
    )
    database: str | None = Field(
        default=None,
        description="A SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…); overrides dir.",
    )
    url: str | None = Field(default=None, description="A relay server to talk to (HTTP).")
    token: str | None = Field(
        default=None,
        description="Bearer token: the admin token of `relaybus serve`, or an agent's own token.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="`relaybus serve`: a token that may read /metrics only (the admin token "
        "may too). With either token set, /metrics needs one of them; without, it is open.",
    )
    agent: str | None = Field(default=None, description="The agent id to act as (CLI --as).")
    workspace: str = Field(default="default", description="The workspace every row belongs to.")
    stale_ttl: float = Field(
        default=90.0, gt=0, description="Seconds without a heartbeat before an agent is offline."
    )
    stuck_after: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a delivery may stay queued while its agent is online before it "
        "counts as stuck (`relaybus agents`, metrics).",
    )
    lease_seconds: float = Field(default=600.0, gt=0, description="Default claim lease, seconds.")
    max_body_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest message body, bytes (UTF-8)."
    )
    retention_days: float = Field(
        default=30.0, gt=0, description="`prune` deletes messages and events older than this."
    )
    agent_retention_days: float = Field(
        default=7.0, gt=0, description="`prune` deletes agents offline for longer than this."
    )
    host: str = Field(
        default="127.0.0.1",
        description="`relaybus serve`: the address to listen on (beyond loopback needs a token).",
    )
    port: int = Field(default=4850, ge=0, le=65535, description="`relaybus serve`: the TCP port.")
    rate_limit: float | None = Field(
        default=None,
        gt=0,
        description="`relaybus serve`: requests per second per token (or client); none if unset.",
    )
    sweep_interval: float = Field(
        default=5.0,
        ge=0,
        description="`relaybus serve`: seconds between background sweeps (lapsed leases, "
        "offline agents); 0 turns them off. In a cluster one replica runs each sweep.",
    )
    prune_interval: float = Field(
        default=3600.0,
        ge=0,
        description="`relaybus serve`: seconds between background retention prunes "
        "(retention_days, agent_retention_days); 0 turns them off.",
    )
    pool_size: int = Field(
        default=10, ge=1, description="PostgreSQL: connections each process keeps open."
    )
    pool_overflow: int = Field(
        default=20, ge=0, description="PostgreSQL: extra connections a process may open at peaks."
    )
    pool_timeout: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: seconds a call waits for a free connection before failing.",
    )
