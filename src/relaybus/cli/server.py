"""``relaybus serve``: run the relay server over this relay's store.

The server modules (FastAPI, uvicorn) are imported when the command runs, so
``relaybus --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from .app import database_option, get_app, loading, store_notices

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@click.command()
@click.option(
    "--host", metavar="ADDR", help="Address to listen on (RELAYBUS_HOST; default 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="TCP port (RELAYBUS_PORT; default 4850; 0 picks a free one).",
)
@database_option
@click.option(
    "--token",
    metavar="TOKEN",
    help="The admin token (RELAYBUS_TOKEN); needed to listen beyond loopback.",
)
@click.option(
    "--metrics-token",
    metavar="TOKEN",
    help="A token that may read /metrics only (RELAYBUS_METRICS_TOKEN). With it or an "
    "admin token set, /metrics needs one of the two.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Allow N requests per second per token (RELAYBUS_RATE_LIMIT), in bursts of up to "
    "RELAYBUS_RATE_BURST (50).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="info logs one line per request.",
)
def serve(
    host: str | None,
    port: int | None,
    database: str | None,
    token: str | None,
    metrics_token: str | None,
    rate_limit: float | None,
    log_level: str,
) -> None:
    """Run the relay server: the HTTP API, live streams and per-agent tokens.

    Serves /v1 (OpenAPI at /openapi.json, docs at /docs), Server-Sent Events
    at /v1/stream, a WebSocket at /v1/ws, /healthz, /readyz and /metrics,
    over the same store as the other commands. Without a token it is open
    (every request is admin) and listens on loopback only; with --token,
    requests need that token or an agent token from registration, and
    /metrics needs it or the --metrics-token. Ctrl-C stops it.

    \b
    Examples:
      relaybus serve
      RELAYBUS_TOKEN=$(openssl rand -hex 32) relaybus serve --host 0.0.0.0
    """
    app = get_app()
    if database is not None:
        app.overrides["database"] = database
    updates: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "token": token,
            "metrics_token": metrics_token,
            "rate_limit": rate_limit,
        }.items()
        if v is not None
    }
    settings = app.settings.model_copy(update=updates)
    settings.check_bind()  # before importing the server: a refusal is instant

    with loading(app.own_process):  # most of a server's start: see loading()
        from ..server.metrics import lean_log_records
        from ..server.run import serve as run

    lean_log_records()  # this process is the relay: its log lines need no caller

    with store_notices(app.json):  # "made the relay private" as one notice line
        run(settings, log_level=log_level.lower(), announce=click.echo)
