"""``relaybus ui``: open the dashboard of this repository's relay in the browser.

The page is served by the warm local relay (:mod:`relaybus.client.warm`), which
listens on 127.0.0.1 for it once asked (:mod:`relaybus.server.loopback`); with a relay
server given (``--url`` / ``RELAYBUS_URL``) it is that server's ``/``. Standard
library and the warm relay's client only: no server, store or HTTP stack is imported.
The browser is opened on a private page that forwards it (:func:`launcher`), so the
token is in no process's arguments.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import render
from .app import creates_relay, get_app, json_option

#: The page in the relay folder that the browser is opened on (see :func:`launcher`).
LAUNCHER = "ui.html"


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="The loopback port the warm relay serves the page on (default 0: any free one).",
)
@click.option("--no-open", is_flag=True, help="Print the address instead of opening it.")
@json_option
@creates_relay
def ui(port: int, no_open: bool) -> None:
    """Open the dashboard in the default browser: agents, messages, tasks and events,
    live.

    The warm local relay of this repository's store (started when none runs)
    serves the page on 127.0.0.1 for as long as it runs (an open page keeps it
    running; it exits after its idle time once the page is closed). The address
    carries a token (#token=...), which the page keeps and removes from the
    address. Other users of this machine can reach 127.0.0.1, not the token:
    without it the page asks for one (an agent's token shows what that agent may
    see). The token is kept in the relay folder (ui.token, private to you): delete
    it and stop the relay (relaybus daemon stop) to change it. The browser is
    opened on a page there (ui.html) that sends it on, so the token never shows
    in a process list. A second call opens the same address.

    With --url / RELAYBUS_URL it opens that server's page, signed in with
    RELAYBUS_TOKEN when set. With RELAYBUS_DAEMON=0 there is no warm relay: run
    `relaybus serve` and open its address instead.

    --json prints {"url": ..., "token": ...}; --no-open prints the address with
    its token and opens nothing.

    \b
    Examples:
      relaybus ui
      relaybus ui --no-open
      relaybus ui --port 4851
      RELAYBUS_URL=http://127.0.0.1:4850 RELAYBUS_TOKEN=... relaybus ui
    """
    app = get_app()
    settings = app.settings
    relay_dir: Path | None = None
    if settings.url:
        url, token = settings.url.rstrip("/") + "/", settings.token or None
    else:
        relay_dir, url, token = _warm_dashboard(port)
    address = f"{url}#token={token}" if token else url
    if no_open:
        if app.json:
            render.emit_json({"url": url, "token": token})
        else:
            click.echo(address)
        return
    import webbrowser

    opened = webbrowser.open(launcher(address, relay_dir) if token else address)
    if app.json:
        render.emit_json({"url": url, "token": token})
    elif opened:
        click.echo(f"relaybus: dashboard at {url} (opened in your browser)")
    else:
        click.echo(f"relaybus: no browser to open here: open {address}")


def launcher(address: str, folder: Path | None) -> str:
    """A ``file:`` URL of a page that sends the browser on to ``address`` (which holds a
    token), written in ``folder`` (the relay folder; ``None``: a new file in the
    temporary folder), readable by this user only.

    The browser is given this page, not ``address``: a browser's command line (the
    first one started keeps it for its whole life) is visible to every user of the
    machine, and the token is what keeps them out. Jupyter opens its pages the same way
    (its ``use_redirect_file``).
    """
    import html
    import os

    target = html.escape(address, quote=True)
    page = (
        '<!doctype html><meta charset="utf-8"><title>relaybus</title>'
        f'<meta http-equiv="refresh" content="0;url={target}">'
        f'<p><a href="{target}">Open the relaybus dashboard</a></p>\n'
    )
    if folder is None:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="relaybus-ui-", suffix=".html")
        path = Path(name)
    else:
        path = folder / LAUNCHER
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(page)
    return path.as_uri()


def _warm_dashboard(port: int) -> tuple[Path, str, str]:
    """The warm relay's dashboard (``(relay folder, url, token)``), its listener opened
    on ``port`` (0: any) when it has none.

    Raises:
        InvalidInput: the warm relay is off, or cannot serve this database.
        Conflict: ``port`` is in use, or the dashboard listens on another port.
        StoreError: the relay did not start.
    """
    import json

    from ..client import warm
    from ..client.request import Request
    from ..client.warm_backend import warm_backend
    from ..errors import InvalidInput

    settings = get_app().settings
    if warm.disabled():
        raise InvalidInput(
            "no warm local relay to serve the page (RELAYBUS_DAEMON=0): run `relaybus serve` "
            "and open http://127.0.0.1:4850/, or unset RELAYBUS_DAEMON"
        )
    backend = warm_backend(settings, create=True)
    if backend is None:  # a database that is not a relay folder's (PostgreSQL, ...)
        raise InvalidInput(
            "the warm local relay serves a relay folder only: run `relaybus serve "
            "--database URL` and open its address"
        )
    try:
        body = backend.request(
            Request("POST", warm.UI_ROUTE, settings.workspace, body={"port": port})
        )
    finally:
        backend.close()
    answer = json.loads(body)
    return backend.relay_dir, str(answer["url"]), str(answer["token"])
