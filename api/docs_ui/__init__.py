"""The OpenAPI UI at /docs, served entirely by the app under a strict Content-Security-Policy.

Swagger UI's JavaScript and CSS come from the `fastapi-offline` package (pinned in uv.lock,
so the bundled Swagger UI version changes only through a reviewed lock update), never from
a CDN. FastAPI's own /docs page starts Swagger UI with an inline script, which a CSP without
`'unsafe-inline'` blocks; here the page loads a start-up script file instead, and reads the
OpenAPI URL from a data attribute.

ReDoc is not served: one UI is enough, and each one widens what the CSP must allow.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
INIT_SCRIPT_PATH = f"{DOCS_PATH}/swagger-ui-init.js"

_ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"
_INIT_SCRIPT = (Path(__file__).parent / "swagger-ui-init.js").read_bytes()

# Swagger UI's stylesheet embeds its icons as data: URIs; it fetches the OpenAPI document
# and "Try it out" requests from this origin; nothing else is needed.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{openapi_url}"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}{init_script}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve /docs, its start-up script and Swagger UI's assets. Create the app with
    `docs_url=None, redoc_url=None` so FastAPI's CDN-loading pages are not registered."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = html.escape(f"{app.title} - Swagger UI")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = _PAGE.format(
            title=title,
            root=html.escape(request.scope.get("root_path", "")),
            assets=ASSETS_PATH,
            openapi_url=html.escape(openapi_url),
            init_script=INIT_SCRIPT_PATH,
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY})

    @app.get(INIT_SCRIPT_PATH, include_in_schema=False)
    async def swagger_ui_init() -> Response:
        return Response(_INIT_SCRIPT, media_type="text/javascript")

    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS_DIRECTORY), name="docs-assets")
