"""Every response carries the browser security headers (issue 12, finding 7), and /docs is
served from the app itself with a page that a script-src 'self' policy lets run."""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
from pathlib import Path

import fastapi_offline
import httpx
import pytest
from fastapi import FastAPI

from api.docs_ui import DOCS_CONTENT_SECURITY_POLICY
from api.main import create_app
from api.security_headers import API_CONTENT_SECURITY_POLICY
from tests.conftest import TEST_JWT_PRIVATE_KEY, AppHarness, make_settings

REQUIRED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy.get("script-src", policy["default-src"])


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/healthz", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/v1/prices", {}, 200),
        ("GET", "/v1/users/me", {}, 401),
        ("GET", "/no-such-path", {}, 404),
        ("DELETE", "/healthz", {}, 405),
        ("POST", "/v1/auth/login", {"json": {"email": 1}}, 422),
        # Refused by the outermost request-context layer, before any route runs.
        ("POST", "/v1/auth/login", {"headers": {"content-length": "99999999"}}, 413),
    ],
)
async def test_every_kind_of_response_carries_the_headers(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert_security_headers(response)
    assert response.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY


async def test_an_unexpected_error_carries_the_headers(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    app = await app_harness.start(make_settings(sqlite_url))

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/probe/boom", boom, methods=["GET"])
    async with AppHarness.client(app) as http:
        response = await http.get("/probe/boom")
    assert response.status_code == 500
    assert_security_headers(response)


def _app_for(app_env: str) -> FastAPI:
    settings = make_settings(
        "postgresql+psycopg://app@db.invalid/slipway",
        app_env=app_env,
        redis_url="redis://cache.invalid:6379/0",
        metrics_token="m" * 40,
        jwt_private_keys=TEST_JWT_PRIVATE_KEY,
        email_backend="ses",
        email_from="no-reply@example.com",
        email_link_base_url="https://app.example.com",
    )
    return create_app(settings)


@pytest.mark.parametrize("app_env", ["staging", "production"])
async def test_deployed_environments_send_hsts(app_env: str) -> None:
    # /healthz touches no dependency, so the app answers without its database or Redis.
    async with AppHarness.client(_app_for(app_env)) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    hsts = response.headers.get("strict-transport-security")
    assert hsts is not None
    max_age = int(hsts.removeprefix("max-age="))
    assert max_age >= 180 * 86_400  # long enough to count, per common HSTS guidance


async def test_local_servers_do_not_pin_browsers_to_https(client: httpx.AsyncClient) -> None:
    """Development and test serve plain http://127.0.0.1: HSTS there would break localhost."""
    response = await client.get("/healthz")
    assert "strict-transport-security" not in response.headers


class _PageResources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script_text: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        for name in ("src", "href", "data-openapi-url"):
            value = attributes.get(name)
            if value:
                self.urls.append(value)
        assert not any(name.startswith("on") for name in attributes), "inline event handler"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script_text.append(data)


async def test_docs_page_has_no_inline_script_and_names_only_its_own_origin(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)
    assert response.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY

    page = _PageResources()
    page.feed(response.text)
    assert page.scripts, "the page loads Swagger UI"
    assert all(script.get("src") for script in page.scripts)
    assert page.inline_script_text == []
    assert page.urls
    assert all(url.startswith("/") and not url.startswith("//") for url in page.urls), page.urls


def test_docs_policy_allows_scripts_from_the_app_only() -> None:
    policy = directives(DOCS_CONTENT_SECURITY_POLICY)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    every_source = [source for values in policy.values() for source in values]
    assert not [s for s in every_source if s.startswith(("http", "'unsafe-", "*"))]


async def _linked_assets(client: httpx.AsyncClient) -> dict[str, str]:
    """The /docs page's asset URLs by file name without its content hash."""
    page = _PageResources()
    page.feed((await client.get("/docs")).text)
    linked = {}
    for url in page.urls:
        if url.startswith("/static/docs/"):
            stem, digest, suffix = url.rsplit("/", 1)[1].rsplit(".", 2)
            assert len(digest) == 16, url
            linked[f"{stem}.{suffix}"] = url
    return linked


async def test_docs_assets_come_from_the_pinned_package(client: httpx.AsyncClient) -> None:
    bundled = Path(fastapi_offline.__file__).parent / "static"
    linked = await _linked_assets(client)
    assert set(linked) == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon.png",
        "swagger-ui-init.js",
    }
    for name, media_type in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
    ):
        response = await client.get(linked[name])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert response.content == (bundled / name).read_bytes()
        assert response.headers["x-content-type-options"] == "nosniff"
    init = await client.get(linked["swagger-ui-init.js"])
    assert init.status_code == 200
    assert init.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle(" in init.content


async def test_docs_assets_are_named_by_content_and_cached_for_a_year(
    client: httpx.AsyncClient,
) -> None:
    """The same URLs CloudFront serves from the static bucket (make publish-static)."""
    for url in (await _linked_assets(client)).values():
        response = await client.get(url)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        digest = url.rsplit(".", 2)[1]
        assert hashlib.sha256(response.content).hexdigest().startswith(digest), url


async def test_docs_assets_are_not_listed(client: httpx.AsyncClient) -> None:
    """Only the hashed names are served; directories, unhashed names and paths out list nothing."""
    for path in (
        "/static",
        "/static/",
        "/static/docs/",
        "/static/docs/swagger-ui.css",
        "/static/manifest.json",
        "/static/%2e%2e/",
        "/docs/assets/swagger-ui.css",
    ):
        response = await client.get(path, follow_redirects=True)
        assert response.status_code == 404, path
        assert "swagger-ui" not in response.text
