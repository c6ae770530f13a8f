"""The OpenAPI UI at /docs under a strict Content-Security-Policy; nothing from other origins.

Swagger UI's JavaScript and CSS come from the `fastapi-offline` package (pinned in uv.lock,
so the bundled Swagger UI version changes only through a reviewed lock update), never from
a third-party CDN. FastAPI's own /docs page starts Swagger UI with an inline script, which a
CSP without `'unsafe-inline'` blocks; here the page loads a start-up script file instead, and
reads the OpenAPI URL from a data attribute.

The page links its assets under content-hashed names in /static (api.docs_ui.assets): behind
CloudFront those paths come from the static bucket (`make publish-static`), cached for a
year; the app serves the same URLs itself, so /docs needs no bucket locally.

ReDoc is not served: one UI is enough, and each one widens what the CSP must allow.
"""

from __future__ import annotations

import html

from fastapi import FastAPI, HTTPException, Request
from starlette.responses import HTMLResponse, Response

from api.docs_ui.assets import (
    IMMUTABLE_CACHE_CONTROL,
    STATIC_PATH,
    STATIC_PREFIX,
    StaticAsset,
    assets_by_key,
    docs_assets,
)

DOCS_PATH = "/docs"

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
<link rel="stylesheet" href="{root}/{stylesheet}">
<link rel="icon" type="image/png" href="{root}/{icon}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{openapi_url}"></div>
<script src="{root}/{bundle}"></script>
<script src="{root}/{init_script}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve /docs and its assets under /static. Create the app with
    `docs_url=None, redoc_url=None` so FastAPI's CDN-loading pages are not registered."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = html.escape(f"{app.title} - Swagger UI")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        assets = docs_assets()
        page = _PAGE.format(
            title=title,
            root=html.escape(request.scope.get("root_path", "")),
            openapi_url=html.escape(openapi_url),
            stylesheet=assets["docs/swagger-ui.css"].key,
            icon=assets["docs/favicon.png"].key,
            bundle=assets["docs/swagger-ui-bundle.js"].key,
            init_script=assets["docs/swagger-ui-init.js"].key,
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY})

    @app.get(STATIC_PATH + "/{name:path}", include_in_schema=False)
    async def static_asset(name: str) -> Response:
        # Only the known hashed names: nothing else on disk is reachable, nothing is listed.
        asset: StaticAsset | None = assets_by_key().get(f"{STATIC_PREFIX}/{name}")
        if asset is None:
            raise HTTPException(status_code=404)
        return Response(
            asset.data,
            media_type=asset.content_type,
            headers={"Cache-Control": IMMUTABLE_CACHE_CONTROL},
        )
