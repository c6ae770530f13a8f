"""/docs in a real browser (issue 12, finding 7): headless Chromium (Debian `chromium`, driven
by Playwright over the DevTools protocol) loads the page from a live uvicorn, Swagger UI renders
every operation and runs one, and the browser reports no CSP violation and no request to another
origin. Requests to other origins are recorded and then aborted, so no test traffic leaves the
machine; a control page (FastAPI's stock /docs HTML) shows that both detectors do fire.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from fastapi.openapi.docs import get_swagger_ui_html
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    async_playwright,
)

from api.docs_ui import DOCS_CONTENT_SECURITY_POLICY
from tests.conftest import GENEROUS_RATE_LIMITS_FILE, TEST_JWT_PRIVATE_KEY
from tests.live_server import LiveServer, serve_api
from tests.services import unavailable

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RENDER_TIMEOUT_MS = 20_000
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# Registered before any page script runs (DevTools-injected, so the page's CSP does not apply).
_RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def live_api(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    environment = {
        "APP_ENV": "test",
        "DATABASE_URL": sqlite_url,
        "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
        "RATE_LIMITS_FILE": str(GENEROUS_RATE_LIMITS_FILE),
    }
    log = tmp_path_factory.mktemp("docs-browser") / "uvicorn.log"
    with serve_api(environment, log) as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Debian package chromium is not installed (make system-deps)")
    async with async_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile (--user-data-dir) per launch.
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Visit:
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @property
    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if _origin(url) != self.origin]

    async def csp_violations(self) -> list[str]:
        violations: list[str] = await self.page.evaluate("window.__cspViolations")
        return violations


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest_asyncio.fixture
async def visit(chromium: Browser, live_api: LiveServer) -> AsyncIterator[Visit]:
    context = await chromium.new_context()
    page = await context.new_page()
    recorded = Visit(page=page, origin=live_api.url)

    def on_request(request: Request) -> None:
        recorded.requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            recorded.console_errors.append(message.text)

    async def keep_on_this_machine(route: Route) -> None:
        if _origin(route.request.url) == recorded.origin:
            await route.continue_()
        else:
            await route.abort()

    context.on("request", on_request)
    page.on("console", on_console)
    await context.route("**/*", keep_on_this_machine)
    await context.add_init_script(_RECORD_CSP_VIOLATIONS)
    try:
        yield recorded
    finally:
        await context.close()


def _operation_count(openapi: dict[str, dict[str, dict[str, object]]]) -> int:
    return sum(1 for item in openapi["paths"].values() for method in item if method in HTTP_METHODS)


async def test_docs_render_every_operation_under_the_csp(
    visit: Visit, live_api: LiveServer
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        openapi = (await http.get(f"{live_api.url}/openapi.json")).json()

    await visit.page.goto(f"{live_api.url}/docs")
    operations = visit.page.locator(".opblock-summary-path")
    await operations.first.wait_for(timeout=RENDER_TIMEOUT_MS)

    rendered = await operations.all_inner_texts()
    assert len(rendered) == _operation_count(openapi)
    assert {text.replace("\u200b", "") for text in rendered} == set(openapi["paths"])
    assert await visit.csp_violations() == []
    assert visit.console_errors == []
    assert visit.foreign_requests == []
    assert f"{live_api.url}/openapi.json" in visit.requests


async def test_try_it_out_calls_the_api_from_the_docs(visit: Visit, live_api: LiveServer) -> None:
    await visit.page.goto(f"{live_api.url}/docs#/health/healthz_healthz_get")
    operation = visit.page.locator("#operations-health-healthz_healthz_get")
    await operation.locator(".try-out__btn").click(timeout=RENDER_TIMEOUT_MS)
    await operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    await status.wait_for(timeout=RENDER_TIMEOUT_MS)

    assert (await status.inner_text()).strip() == "200"
    assert '"status": "ok"' in await operation.locator(".live-responses-table").inner_text()
    assert await visit.csp_violations() == []
    assert visit.foreign_requests == []


async def test_the_detectors_catch_fastapis_stock_docs_page(
    visit: Visit, live_api: LiveServer
) -> None:
    """Control: the CDN-loading page with an inline start-up script FastAPI generates, served
    from the same origin, is caught twice: under the docs CSP its inline script is refused,
    and without a CSP it requests Swagger UI from another origin."""
    stock = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="stock").body)

    async def fulfil(route: Route, policy: str | None) -> None:
        headers = {"content-type": "text/html"}
        if policy:
            headers["content-security-policy"] = policy
        await route.fulfill(body=stock, headers=headers)

    await visit.page.route(
        f"{live_api.url}/stock-docs-csp", lambda r: fulfil(r, DOCS_CONTENT_SECURITY_POLICY)
    )
    await visit.page.route(f"{live_api.url}/stock-docs-open", lambda r: fulfil(r, None))

    await visit.page.goto(f"{live_api.url}/stock-docs-csp")
    violations = await visit.page.evaluate("window.__cspViolations")
    assert any(v.startswith("script-src") for v in violations), violations

    await visit.page.goto(f"{live_api.url}/stock-docs-open", wait_until="load")
    assert any("swagger-ui" in url for url in visit.foreign_requests), visit.requests
