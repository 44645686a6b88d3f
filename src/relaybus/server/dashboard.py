"""The web dashboard at ``/`` and the API documentation at ``/docs`` and ``/redoc``,
all from files inside the package: nothing is fetched from the internet.

- ``/`` is the dashboard's page (``ui/index.html``); its scripts, styles and the
  vendored Alpine.js (``ui/vendor``, with its licence) are under ``/ui/``. The page
  speaks the public API (``/v1``, ``/v1/stream``) with the token the user signs in
  with, so it sees exactly what that token sees (docs/dashboard.md).
- ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their bundles from
  ``/docs/assets/``: the files of the ``fastapi-offline`` package (MIT), a maintained
  copy of both on PyPI. Only its files are used, not its code.

Every page is sent with a Content-Security-Policy that allows this origin only, so a
page of ours cannot load anything from elsewhere even by mistake.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

#: The dashboard's files (the page, its scripts and styles, the vendored libraries).
UI_DIR = Path(__file__).with_name("ui")

#: Only this origin; Alpine.js evaluates its attribute expressions with ``Function``,
#: hence ``'unsafe-eval'`` for scripts (still this origin's only).
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"}


def docs_assets() -> Path:
    """The folder of Swagger UI's and ReDoc's bundles (``fastapi_offline/static``),
    found without importing the package."""
    spec = importlib.util.find_spec("fastapi_offline")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def index(request: Request) -> Response:
    """``GET /``: the dashboard's page."""
    return FileResponse(UI_DIR / "index.html", headers=HEADERS)


def install(app: FastAPI) -> None:
    """Add ``/``, ``/ui/…``, ``/docs``, ``/redoc`` and ``/docs/assets/…`` to ``app``
    (created with ``docs_url=None, redoc_url=None``), outside the OpenAPI document."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    title = f"{app.title} {app.version}"
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger(request: Request) -> Response:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/ui/favicon.svg",
        )
        return HTMLResponse(page.body, headers=HEADERS)

    async def redoc(request: Request) -> Response:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/ui/favicon.svg",
            with_google_fonts=False,
        )
        return HTMLResponse(page.body, headers=HEADERS)

    app.router.routes.extend(
        [
            Route("/", index, methods=["GET", "HEAD"], include_in_schema=False),
            Route("/docs", swagger, methods=["GET", "HEAD"], include_in_schema=False),
            Route("/redoc", redoc, methods=["GET", "HEAD"], include_in_schema=False),
            Mount("/docs/assets", StaticFiles(directory=docs_assets()), name="docs-assets"),
            Mount("/ui", StaticFiles(directory=UI_DIR), name="ui"),
        ]
    )
