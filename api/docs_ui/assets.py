"""The static assets the app's pages load, under content-hashed names.

A name carries the first hex digits of its file's SHA-256
(`/static/docs/swagger-ui.<digest>.css`), so a URL's bytes never change: the CDN and browsers
may cache it for a year (`immutable`), and a new Swagger UI (or start-up script) gets new URLs
instead of waiting for caches to expire.

Both sides compute the names from the same bytes with this module: `make publish-static`
(scripts/publish_static.py) uploads each asset to the static bucket under `static/<hashed
name>`, which CloudFront serves at `/static/<hashed name>`; the app's /docs page links those
URLs and the app serves them itself too, so /docs works locally and without S3. Digests are
computed on first use, not at import, to keep the API's cold start free of hashing.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import fastapi_offline

STATIC_PREFIX = "static"
STATIC_PATH = f"/{STATIC_PREFIX}"
# Hashed names never change content: a year, and no revalidation (RFC 8246).
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
DIGEST_LENGTH = 16  # 64 bits of SHA-256: collisions between versions of an asset are moot

# Swagger UI from the pinned fastapi-offline package; ReDoc is not served (api.docs_ui).
_SWAGGER_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"
_DOCS_FILES: dict[str, Path] = {
    "docs/swagger-ui-bundle.js": _SWAGGER_DIRECTORY / "swagger-ui-bundle.js",
    "docs/swagger-ui.css": _SWAGGER_DIRECTORY / "swagger-ui.css",
    "docs/favicon.png": _SWAGGER_DIRECTORY / "favicon.png",
    "docs/swagger-ui-init.js": Path(__file__).parent / "swagger-ui-init.js",
}
# What browsers need to hear; mimetypes' table varies with the host's /etc/mime.types.
_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    known = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0]
    return known or "application/octet-stream"


def hashed_name(name: str, data: bytes) -> str:
    """`<dir>/swagger-ui.css` → `<dir>/swagger-ui.<digest>.css` (the digest before the
    suffix, so the suffix still tells the type)."""
    path = PurePosixPath(name)
    digest = hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH]
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    return str(path.with_name(f"{stem}.{digest}{suffix}"))


@dataclass(frozen=True)
class StaticAsset:
    name: str  # logical name: the URL path under /static/ before hashing
    source: Path

    @functools.cached_property
    def data(self) -> bytes:
        return self.source.read_bytes()

    @functools.cached_property
    def hashed(self) -> str:
        return hashed_name(self.name, self.data)

    @property
    def key(self) -> str:
        """The object key in the static bucket, and the URL path without its leading slash."""
        return f"{STATIC_PREFIX}/{self.hashed}"

    @property
    def content_type(self) -> str:
        return content_type(self.name)


@functools.cache
def docs_assets() -> dict[str, StaticAsset]:
    """The /docs page's assets by logical name."""
    return {name: StaticAsset(name, source) for name, source in _DOCS_FILES.items()}


@functools.cache
def assets_by_key() -> dict[str, StaticAsset]:
    """What the app serves under /static: the docs assets by their hashed key."""
    return {asset.key: asset for asset in docs_assets().values()}
