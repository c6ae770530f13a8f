"""Rate limits through the real app (docs/rate-limits.md), in-process, on Redis and on a Redis
Cluster alike.

Every test runs against each backend; the clock is a FakeClock moved forward instead of
sleeping, and each app has its own Redis key prefix. On Redis, every decision must have been
made there (none fell back in-process). The refused request is always checked
for the 429 problem, both headers and an integer Retry-After after which it passes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Depends
from prometheus_client import REGISTRY

from api.auth.dependencies import bearer_token
from tests.api.auth_helpers import STRONG_PASSWORD, unique_email
from tests.api.ratelimit_harness import (
    TINY_POLICIES,
    LimitedApp,
    assert_limited_headers,
    assert_quota_exceeded,
    start_limited_app,
)
from tests.conftest import migrate
from tests.redis_cluster import LocalRedisCluster

Starter = Callable[..., Awaitable[LimitedApp]]
Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@pytest.fixture(scope="module")
def ratelimit_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of these tests' own, so registered users never leak into other tests."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ratelimit') / 'rl.db'}"
    migrate(url)
    return url


def _backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """How start_limited_app reaches the backend: no Redis, one Redis, or a Redis Cluster
    (three primaries with replicas, REDIS_CLUSTER=true)."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    if request.param == "redis-cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return {"redis_url": cluster.url, "redis_cluster": True}
    return {"redis_url": None}


@pytest.fixture(params=["in-process", "redis", "redis-cluster"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _backend(request)


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A backend that API instances share."""
    return _backend(request)


@pytest_asyncio.fixture
async def start(ratelimit_database: str, backend: dict[str, Any]) -> AsyncIterator[Starter]:
    fallbacks = _sample("ratelimit_backend_errors_total")
    async with AsyncExitStack() as stack:

        async def starter(**options: Any) -> LimitedApp:
            return await start_limited_app(stack, ratelimit_database, **backend, **options)

        yield starter
    if backend["redis_url"]:
        assert _sample("ratelimit_backend_errors_total") == fallbacks


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _exhaust(
    limited: LimitedApp,
    client: httpx.AsyncClient,
    send: Send,
    policy: str,
    quota: int,
    window: int,
) -> None:
    """`quota` requests pass with counting-down headers, the next is refused, and it passes
    again exactly when Retry-After says (one second earlier it is still refused)."""
    for remaining in range(quota - 1, -1, -1):
        response = await send(client)
        assert response.status_code != 429, response.text
        assert_limited_headers(response, policy, quota, window, remaining)
    retry_after = assert_quota_exceeded(await send(client), policy, quota, window)
    if retry_after > 1:
        limited.clock.advance(retry_after - 1)
        assert_quota_exceeded(await send(client), policy, quota, window)
        limited.clock.advance(1)
    else:
        limited.clock.advance(retry_after)
    passed = await send(client)
    assert passed.status_code != 429, passed.text
    # Capacity comes back one request per window/quota; Retry-After was rounded up to whole
    # seconds, so short intervals may have refilled a few requests by then.
    interval_ms = -(-window * 1000 // quota)
    refilled = (retry_after * 1000 - interval_ms) // interval_ms
    assert_limited_headers(passed, policy, quota, window, remaining=refilled)


def _protected_router() -> APIRouter:
    """A bearer-protected route that needs no database: only the token scheme is declared."""
    router = APIRouter(prefix="/v1/test-protected")

    @router.get("/ping")
    async def ping(token: Annotated[str | None, Depends(bearer_token)]) -> dict[str, bool]:
        return {"token": token is not None}

    return router


def _public_router(calls: list[str]) -> APIRouter:
    router = APIRouter(prefix="/v1/test-public")

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        calls.append("ping")
        return {"pong": "yes"}

    return router


# --- each default policy -------------------------------------------------------------------


async def test_login_policy_is_ten_per_minute_per_ip_and_email(start: Starter) -> None:
    limited = await start()
    email = unique_email()
    async with limited.client("198.51.100.10") as client:
        # Bodies without a password are cheap 422s: the limit counts before the endpoint runs.
        await _exhaust(
            limited,
            client,
            lambda c: c.post("/v1/auth/login", json={"email": email}),
            "login",
            10,
            60,
        )
        # Another email from the same address has its own quota ...
        other = await client.post("/v1/auth/login", json={"email": unique_email()})
        assert other.status_code == 422
        assert_limited_headers(other, "login", 10, 60, remaining=9)
        # ... while the OAuth2 form with the same email (any case) shares the login quota.
        form = await client.post("/v1/auth/token", data={"username": email.upper()})
        assert_quota_exceeded(form, "login", 10, 60)
    async with limited.client("198.51.100.11") as client:
        elsewhere = await client.post("/v1/auth/login", json={"email": email})
        assert_limited_headers(elsewhere, "login", 10, 60, remaining=9)


async def test_register_policy_is_twenty_per_hour_per_ip(start: Starter) -> None:
    limited = await start()
    async with limited.client("198.51.100.20") as client:
        await _exhaust(
            limited,
            client,
            lambda c: c.post("/v1/auth/register", json={"email": "not-an-email"}),
            "register",
            20,
            3600,
        )


async def test_refresh_policy_is_sixty_per_minute_per_ip(start: Starter) -> None:
    limited = await start()
    async with limited.client("198.51.100.30") as client:
        await _exhaust(
            limited,
            client,
            lambda c: c.post("/v1/auth/refresh", json={"refresh_token": "spent"}),
            "refresh",
            60,
            60,
        )


async def test_payments_create_policy_is_thirty_per_minute_per_user(start: Starter) -> None:
    limited = await start()
    alice, bob = limited.bearer_for(), limited.bearer_for()
    async with limited.client("198.51.100.40") as client:
        await _exhaust(
            limited,
            client,
            lambda c: c.post("/v1/payments", json={}, headers=alice),
            "payments-create",
            30,
            60,
        )
        # Same address, another user: a quota of its own.
        other = await client.post("/v1/payments", json={}, headers=bob)
        assert_limited_headers(other, "payments-create", 30, 60, remaining=29)
    # Same user from another address: still the same (exhausted, then one spent) quota.
    async with limited.client("198.51.100.41") as client:
        moved = await client.post("/v1/payments", json={}, headers=alice)
        assert_quota_exceeded(moved, "payments-create", 30, 60)


async def test_authenticated_policy_covers_other_bearer_routes(start: Starter) -> None:
    limited = await start(routers=[_protected_router()])
    user = limited.bearer_for()
    async with limited.client("198.51.100.50") as client:
        await _exhaust(
            limited,
            client,
            lambda c: c.get("/v1/test-protected/ping", headers=user),
            "authenticated",
            600,
            60,
        )
        # The real bearer endpoints fall under the same policy and the same user quota (nine
        # requests are left after waiting out Retry-After).
        me = await client.get("/v1/users/me", headers=user)
        assert_limited_headers(me, "authenticated", 600, 60, remaining=8)
        other = await client.get("/v1/users/me", headers=limited.bearer_for())
        assert_limited_headers(other, "authenticated", 600, 60, remaining=599)


async def test_anonymous_policy_covers_other_public_routes(start: Starter) -> None:
    limited = await start()
    async with limited.client("198.51.100.60") as client:
        await _exhaust(limited, client, lambda c: c.get("/v1/prices"), "anonymous", 300, 60)
        # Every public endpoint shares the client's anonymous quota, as do unknown paths (four
        # requests are left after waiting out Retry-After).
        jwks = await client.get("/.well-known/jwks.json")
        assert_limited_headers(jwks, "anonymous", 300, 60, remaining=3)
        unknown = await client.get("/v1/no-such-route")
        assert unknown.status_code == 404
        assert_limited_headers(unknown, "anonymous", 300, 60, remaining=2)


# Every endpoint of docs/api.md and the policy that limits it (None: exempt).
CONTRACT_ENDPOINTS = [
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("POST", "/v1/webhooks/stripe", None),
    ("GET", "/.well-known/jwks.json", "anonymous"),
    ("POST", "/v1/auth/register", "register"),
    ("POST", "/v1/auth/login", "login"),
    ("POST", "/v1/auth/token", "login"),
    ("POST", "/v1/auth/refresh", "refresh"),
    ("POST", "/v1/auth/logout", "anonymous"),
    ("GET", "/v1/auth/sessions", "authenticated"),
    ("DELETE", "/v1/auth/sessions/00000000-0000-0000-0000-000000000000", "authenticated"),
    ("GET", "/v1/users/me", "authenticated"),
    ("GET", "/v1/admin/users", "authenticated"),
    ("GET", "/v1/prices", "anonymous"),
    ("POST", "/v1/payments", "payments-create"),
    ("GET", "/v1/payments", "authenticated"),
    ("GET", "/v1/payments/00000000-0000-0000-0000-000000000000", "authenticated"),
    ("POST", "/v1/payments/00000000-0000-0000-0000-000000000000/refund", "authenticated"),
    ("POST", "/v1/billing/checkout", "billing"),
    ("POST", "/v1/billing/subscriptions", "billing"),
    ("GET", "/v1/billing/subscription", "authenticated"),
    ("POST", "/v1/billing/subscription/cancel", "billing"),
    ("POST", "/v1/billing/subscription/resume", "billing"),
    ("POST", "/v1/billing/subscription/change", "billing"),
    ("POST", "/v1/billing/portal", "billing"),
    ("GET", "/v1/billing/premium-report", "authenticated"),
    ("GET", "/docs", "anonymous"),
    ("GET", "/openapi.json", "anonymous"),
]


async def test_every_contract_endpoint_has_its_policy(start: Starter) -> None:
    limited = await start()
    async with limited.client("198.51.100.140") as client:
        for method, path, policy in CONTRACT_ENDPOINTS:
            # Unauthenticated and without Stripe: 401s and 503s are fine, the headers count.
            response = await client.request(method, path, content=b"{}")
            if policy is None:
                assert "RateLimit-Policy" not in response.headers, path
            else:
                header = response.headers.get("RateLimit-Policy", "")
                assert header.startswith(f'"{policy}";'), (method, path, header)


# --- keys and identities -------------------------------------------------------------------


async def test_login_body_still_reaches_the_endpoint(start: Starter) -> None:
    limited = await start()
    email = unique_email()
    async with limited.client("198.51.100.70") as client:
        registered = await client.post(
            "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = await client.post(
            "/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
        )
        assert login.status_code == 200, login.text
        assert_limited_headers(login, "login", 10, 60, remaining=9)
        form = await client.post(
            "/v1/auth/token", data={"username": email, "password": STRONG_PASSWORD}
        )
        assert form.status_code == 200, form.text
        assert_limited_headers(form, "login", 10, 60, remaining=8)


async def test_invalid_tokens_count_against_the_client_ip(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES, routers=[_protected_router()])
    victim = limited.bearer_for()
    forged = {"Authorization": victim["Authorization"][:-4] + "AAAA"}
    async with limited.client("198.51.100.80") as client:
        for _ in range(3):
            response = await client.get("/v1/test-protected/ping", headers=forged)
            assert response.status_code != 429
        assert_quota_exceeded(
            await client.get("/v1/test-protected/ping", headers={"Authorization": "Bearer junk"}),
            "authenticated",
            3,
            60,
        )
        # The forged copies of the victim's token spent nothing of the victim's quota.
        genuine = await client.get("/v1/test-protected/ping", headers=victim)
        assert genuine.status_code == 200
        assert_limited_headers(genuine, "authenticated", 3, 60, remaining=2)


async def test_refused_requests_never_reach_the_endpoint(start: Starter) -> None:
    calls: list[str] = []
    limited = await start(policy_file=TINY_POLICIES, routers=[_public_router(calls)])
    async with limited.client("198.51.100.90") as client:
        statuses = [(await client.get("/v1/test-public/ping")).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert calls == ["ping"] * 3


# --- exemptions, nesting, metrics ----------------------------------------------------------


async def test_health_metrics_and_webhooks_are_exempt(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES)
    async with limited.client("198.51.100.100") as client:
        for _ in range(5):
            for method, path in (
                ("GET", "/healthz"),
                ("GET", "/readyz"),
                ("GET", "/metrics"),
                ("POST", "/v1/webhooks/stripe"),
            ):
                response = await client.request(method, path, content=b"{}")
                assert response.status_code != 429, path
                assert "RateLimit" not in response.headers, path
                assert "RateLimit-Policy" not in response.headers, path


async def test_unknown_paths_under_webhooks_are_limited(start: Starter) -> None:
    """Only the Stripe webhook route is exempt: probing its neighbours costs anonymous quota."""
    limited = await start(policy_file=TINY_POLICIES)
    async with limited.client("198.51.100.101") as client:
        statuses = [
            (await client.request(method, path, content=b"{}")).status_code
            for method, path in [
                ("POST", "/v1/webhooks/paypal"),
                ("GET", "/v1/webhooks/stripe"),
                ("POST", "/v1/webhooks/stripe/../x"),
                ("POST", "/v1/webhooks/anything/else"),
            ]
        ]
    assert statuses[:3] != [429] * 3
    assert statuses[3] == 429


async def test_routers_included_at_any_depth_are_limited_by_full_template(
    start: Starter,
) -> None:
    inner = APIRouter(prefix="/inner")

    @inner.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    middle = APIRouter(prefix="/middle")
    middle.include_router(inner)
    outer = APIRouter(prefix="/v1/outer")
    outer.include_router(middle)
    # The same inner router mounted elsewhere is another route template: anonymous applies.
    elsewhere = APIRouter(prefix="/v1/elsewhere")
    elsewhere.include_router(inner)
    limited = await start(policy_file=TINY_POLICIES, routers=[outer, elsewhere])

    async with limited.client("198.51.100.110") as client:
        # Different ids share the route's quota: the key is the template, not the path.
        first = await client.get("/v1/outer/middle/inner/items/1")
        second = await client.get("/v1/outer/middle/inner/items/2")
        assert (first.status_code, second.status_code) == (200, 200)
        assert_limited_headers(second, "deep", 2, 10, remaining=0)
        assert_quota_exceeded(await client.get("/v1/outer/middle/inner/items/3"), "deep", 2, 10)
        other = await client.get("/v1/elsewhere/inner/items/1")
        assert other.status_code == 200
        assert_limited_headers(other, "anonymous", 3, 60, remaining=2)


async def test_decisions_are_counted_per_policy(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES)
    allowed = _sample("ratelimit_decisions_total", policy="anonymous", decision="allowed")
    refused = _sample("ratelimit_decisions_total", policy="anonymous", decision="limited")
    async with limited.client("198.51.100.120") as client:
        for _ in range(5):
            await client.get("/v1/prices")
        metrics = await client.get("/metrics")
    assert _sample("ratelimit_decisions_total", policy="anonymous", decision="allowed") == (
        allowed + 3
    )
    assert _sample("ratelimit_decisions_total", policy="anonymous", decision="limited") == (
        refused + 2
    )
    assert 'ratelimit_decisions_total{decision="limited",policy="anonymous"}' in metrics.text
    # The refusals are recorded under their route template, not as unmatched requests.
    assert _sample("http_requests_total", method="GET", route="/v1/prices", status="429") >= 2


async def test_cors_preflights_are_free_and_refusals_carry_cors_headers(start: Starter) -> None:
    origin = "https://app.example.com"
    limited = await start(policy_file=TINY_POLICIES, settings_overrides={"cors_origins": origin})
    preflight = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    async with limited.client("198.51.100.125") as client:
        for _ in range(5):
            response = await client.options("/v1/prices", headers=preflight)
            assert response.status_code == 200
            assert "RateLimit" not in response.headers
        statuses = [
            (await client.get("/v1/prices", headers={"Origin": origin})).status_code
            for _ in range(3)
        ]
        refused = await client.get("/v1/prices", headers={"Origin": origin})
    assert statuses == [200, 200, 200]
    assert_quota_exceeded(refused, "anonymous", 3, 60)
    # Browsers only let the page read the refusal (and its headers) with these.
    assert refused.headers["access-control-allow-origin"] == origin
    assert "Retry-After" in refused.headers["access-control-expose-headers"]


# --- client IP and proxies -----------------------------------------------------------------


async def test_forwarded_for_from_untrusted_peer_is_ignored(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES)
    async with limited.client("203.0.113.5") as client:
        statuses = [
            (
                await client.get("/v1/prices", headers={"X-Forwarded-For": f"192.0.2.{n}"})
            ).status_code
            for n in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]


async def test_forwarded_for_from_trusted_proxy_names_the_client(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES)
    async with limited.client("10.1.2.3") as proxy:
        for _ in range(3):
            response = await proxy.get("/v1/prices", headers={"X-Forwarded-For": "192.0.2.7"})
            assert response.status_code == 200
        # The client prepending a forged address changes nothing: the right-most untrusted
        # entry (written by our proxy) is the client. Trusted hops behind it are skipped.
        for forwarded in ("192.0.2.7", "6.6.6.6, 192.0.2.7", "6.6.6.6, 192.0.2.7, 10.9.9.9"):
            refused = await proxy.get("/v1/prices", headers={"X-Forwarded-For": forwarded})
            assert_quota_exceeded(refused, "anonymous", 3, 60)
        # Other clients behind the same proxy have their own quotas.
        other = await proxy.get("/v1/prices", headers={"X-Forwarded-For": "192.0.2.8"})
        assert other.status_code == 200
        assert_limited_headers(other, "anonymous", 3, 60, remaining=2)
    # A request straight from the proxy address (no header) is the proxy's own quota.
    async with limited.client("10.1.2.3") as proxy:
        assert (await proxy.get("/v1/prices")).status_code == 200


async def test_ipv6_clients_share_their_slash_64(start: Starter) -> None:
    limited = await start(policy_file=TINY_POLICIES)
    statuses = []
    for host in range(1, 6):
        async with limited.client(f"2001:db8:1:2::{host:x}") as client:
            statuses.append((await client.get("/v1/prices")).status_code)
    assert statuses == [200, 200, 200, 429, 429]


# --- concurrency ---------------------------------------------------------------------------


async def test_parallel_requests_on_two_instances_never_exceed_the_quota(
    ratelimit_database: str, shared_backend: dict[str, Any]
) -> None:
    """Two API instances sharing Redis, 120 concurrent logins for one email: exactly 10 pass."""
    async with AsyncExitStack() as stack:
        first = await start_limited_app(stack, ratelimit_database, **shared_backend)
        second = await start_limited_app(
            stack, ratelimit_database, **shared_backend, key_prefix=first.key_prefix
        )
        second.clock.now = first.clock.now
        email = unique_email()
        async with first.client("198.51.100.130") as a, second.client("198.51.100.130") as b:
            responses = await asyncio.gather(
                *[
                    client.post("/v1/auth/login", json={"email": email})
                    for _ in range(60)
                    for client in (a, b)
                ]
            )
    statuses = [response.status_code for response in responses]
    assert statuses.count(429) == 110
    assert statuses.count(422) == 10
