"""Behind CloudFront the viewer's address arrives in `CloudFront-Viewer-Address`, believed only
when the request also carries the origin secret CloudFront adds (`X-Origin-Verify`). Without
it, every viewer behind one edge would share that edge's limits and session address.

Simulated topology (ECS): viewer -> CloudFront edge -> ALB (in TRUSTED_PROXIES) -> app, so the
app's socket peer is the ALB and X-Forwarded-For ends with the edge's address. On Lambda the
function URL's `sourceIp` is the edge itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from mangum import Mangum

from api.main import create_app
from tests.api.auth_helpers import register_and_login
from tests.conftest import AppHarness, delete_all_rows, make_settings, migrate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TINY_POLICIES = FIXTURES / "ratelimits_tiny.toml"  # anonymous: 3 per 60 s
ORIGIN_SECRET = "origin-verify-" + "s" * 40
ALB = "10.0.1.20"
EDGE = "130.176.0.5"  # one CloudFront edge server, shared by every viewer behind it


def _through_edge(viewer: str, secret: str | None = ORIGIN_SECRET) -> dict[str, str]:
    headers = {
        "X-Forwarded-For": f"{viewer}, {EDGE}",
        "CloudFront-Viewer-Address": f"{viewer}:50123",
    }
    if secret is not None:
        headers["X-Origin-Verify"] = secret
    return headers


def _settings(database_url: str, **overrides: Any) -> Any:
    values = {
        "rate_limits_file": TINY_POLICIES,
        "trusted_proxies": "10.0.0.0/8",
        "origin_verify_secret": ORIGIN_SECRET,
        **overrides,
    }
    return make_settings(database_url, **values)


async def _statuses(client: httpx.AsyncClient, headers: dict[str, str], count: int) -> list[int]:
    return [(await client.get("/v1/prices", headers=headers)).status_code for _ in range(count)]


async def test_two_viewers_behind_one_edge_have_separate_limits(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    app = await app_harness.start(_settings(sqlite_url))
    async with AppHarness.client(app, client_ip=ALB) as alb:
        first = await _statuses(alb, _through_edge("198.51.100.1"), 4)
        second = await _statuses(alb, _through_edge("198.51.100.2"), 3)
        ipv6 = await _statuses(alb, _through_edge("2001:db8::7"), 3)
    assert first == [200, 200, 200, 429]
    assert second == [200, 200, 200]
    assert ipv6 == [200, 200, 200]


@pytest.mark.parametrize("secret", [None, "", "origin-verify-" + "x" * 40, ORIGIN_SECRET[:-1]])
async def test_a_forged_viewer_header_without_the_origin_secret_changes_nothing(
    app_harness: AppHarness, sqlite_url: str, secret: str | None
) -> None:
    app = await app_harness.start(_settings(sqlite_url))
    async with AppHarness.client(app, client_ip=ALB) as alb:
        # A new forged viewer address on every request: all of them still count against the
        # address the trusted chain names (the edge), as before.
        statuses = [
            (await alb.get("/v1/prices", headers=_through_edge(f"192.0.2.{n}", secret))).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


async def test_without_a_configured_secret_the_viewer_header_is_never_read(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    app = await app_harness.start(_settings(sqlite_url, origin_verify_secret=None))
    async with AppHarness.client(app, client_ip=ALB) as alb:
        statuses = [
            (await alb.get("/v1/prices", headers=_through_edge(f"192.0.2.{n}"))).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


async def test_sessions_record_the_viewer_address(app_harness: AppHarness, sqlite_url: str) -> None:
    app = await app_harness.start(
        make_settings(sqlite_url, trusted_proxies="10.0.0.0/8", origin_verify_secret=ORIGIN_SECRET)
    )

    def via_edge(viewer: str, secret: str = ORIGIN_SECRET) -> httpx.AsyncClient:
        return AppHarness.client(app, client_ip=ALB, headers=_through_edge(viewer, secret))

    async with via_edge("198.51.100.44") as first:
        user = await register_and_login(first)
    credentials = {"email": user["email"], "password": user["password"]}
    async with via_edge("2001:db8::45") as second:
        await second.post("/v1/auth/login", json=credentials)
    async with via_edge("198.51.100.46", secret="forged") as forger:
        await forger.post("/v1/auth/login", json=credentials)
        sessions = (await forger.get("/v1/auth/sessions", headers=user["headers"])).json()
    # Newest first; the forged one is recorded as the edge the trusted chain names.
    assert [session["ip"] for session in sessions] == [EDGE, "2001:db8::45", "198.51.100.44"]
    delete_all_rows(sqlite_url)


def _function_url_event(headers: dict[str, str]) -> dict[str, Any]:
    """A Lambda function URL (payload 2.0) request as CloudFront's edge sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/v1/prices",
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", **headers},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": "/v1/prices",
                "sourceIp": EDGE,
                "protocol": "HTTP/1.1",
                "userAgent": "Amazon CloudFront",
            },
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "accountId": "1",
            "apiId": "abc",
            "requestId": "r",
            "stage": "$default",
            "time": "",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


def _lambda_statuses(tmp_path: Path, secret_for: Callable[[int], str | None]) -> list[int]:
    """Five viewers' requests (two each) through the Mangum handler, in a thread with an event
    loop of its own (Mangum runs the app on the thread's loop)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lambda.db'}"
    migrate(url)
    handler = Mangum(create_app(_settings(url), dispose_on_shutdown=False), lifespan="auto")

    def run() -> list[int]:
        asyncio.set_event_loop(asyncio.new_event_loop())
        statuses = []
        for viewer in range(5):
            headers = {
                key.lower(): value
                for key, value in _through_edge(f"198.51.100.{viewer}", None).items()
                if key != "X-Forwarded-For"  # function URLs are reached directly
            }
            secret = secret_for(viewer)
            if secret is not None:
                headers["x-origin-verify"] = secret
            for _ in range(2):
                response = handler(_function_url_event(headers), None)  # type: ignore[arg-type]
                statuses.append(response["statusCode"])
        return statuses

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run).result(timeout=60)


def test_on_lambda_viewers_behind_one_edge_have_separate_limits(tmp_path: Path) -> None:
    assert _lambda_statuses(tmp_path, lambda _: ORIGIN_SECRET) == [200] * 10


def test_on_lambda_a_forged_viewer_header_counts_against_the_edge(tmp_path: Path) -> None:
    assert _lambda_statuses(tmp_path, lambda _: "forged") == [200, 200, 200] + [429] * 7
