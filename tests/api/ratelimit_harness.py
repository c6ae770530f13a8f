"""Helpers for the rate-limit tests: apps started with a controllable clock, a Redis key
prefix of their own (other test sessions share the Redis server), and throwaway routes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from api.auth.dependencies import keyring_for
from api.auth.models import User
from api.auth.tokens import issue_access_token
from api.main import create_app
from api.ratelimit import RateLimiter
from tests.conftest import AppHarness, make_settings, migrate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TINY_POLICIES = FIXTURES / "ratelimits_tiny.toml"
QUOTA_EXCEEDED = "https://slipway.dev/problems/quota-exceeded"


class FakeClock:
    """Wall-clock seconds that only move when told to (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class LimitedApp:
    app: FastAPI
    clock: FakeClock
    limiter: RateLimiter
    key_prefix: str

    def client(self, client_ip: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        return AppHarness.client(self.app, client_ip=client_ip, **kwargs)

    def bearer_for(self, user_id: uuid.UUID | None = None) -> dict[str, str]:
        """A genuine access token of this app for a user (no database row needed)."""
        user = User(id=user_id or uuid.uuid4(), email="u@example.com", password_hash="x")
        settings = self.app.state.settings
        token = issue_access_token(keyring_for(self.app), settings, user, uuid.uuid4())
        return {"Authorization": f"Bearer {token}"}


def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory, name: str) -> str:
    """A migrated SQLite database of one test module's own (users never leak elsewhere)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp(name) / 'app.db'}"
    migrate(url)
    return url


async def start_limited_app(
    stack: AsyncExitStack,
    database_url: str,
    *,
    redis_url: str | None,
    redis_cluster: bool = False,
    policy_file: Path | None = None,
    routers: Iterable[APIRouter] = (),
    key_prefix: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
    **limiter_options: Any,
) -> LimitedApp:
    """create_app with the real (or given) policies, extra routers, and a fake clock."""
    settings = make_settings(
        database_url,
        rate_limits_file=policy_file,
        redis_url=redis_url,
        redis_cluster=redis_cluster,
        trusted_proxies="10.0.0.0/8,fd00::/8",
        **(settings_overrides or {}),
    )
    app = create_app(settings)
    for router in routers:
        app.include_router(router)
    clock = FakeClock()
    prefix = key_prefix or f"test-rl:{uuid.uuid4().hex}:"
    # A loaded test machine can stall a round trip past the production 50 ms budget, which
    # would fall back in-process mid-test; the outage tests set the real budget themselves.
    limiter_options.setdefault("redis_timeout", 2.0)
    limiter = RateLimiter.from_settings(settings, key_prefix=prefix, clock=clock, **limiter_options)
    app.state.rate_limiter = limiter
    await stack.enter_async_context(app.router.lifespan_context(app))
    return LimitedApp(app=app, clock=clock, limiter=limiter, key_prefix=prefix)


# The bundled policies that also limit another policy's routes (default_policies.toml).
DEFAULT_COMPANIONS = {"login": ("auth-ip",), "register": ("auth-ip",)}


def _members(header: str) -> dict[str, str]:
    """A Structured Fields list of policy items, by policy name."""
    members = [member.strip() for member in header.split(",")]
    return {member.split(";", 1)[0].strip('"'): member for member in members}


def assert_limited_headers(
    response: httpx.Response,
    policy: str,
    quota: int,
    window: int,
    remaining: int,
    others: tuple[str, ...] | None = None,
) -> None:
    """`policy`'s members of both headers; the route's own policy comes first, then exactly
    the other policies named in `others` (by default, the companions of the bundled file)."""
    expected = others if others is not None else DEFAULT_COMPANIONS.get(policy, ())
    policies = _members(response.headers["RateLimit-Policy"])
    states = _members(response.headers["RateLimit"])
    assert policy in policies, response.headers["RateLimit-Policy"]
    assert len(policies) == len(states) == 1 + len(expected), response.headers["RateLimit"]
    assert policies[policy] == f'"{policy}";q={quota};w={window}'
    value = states[policy]
    assert value.startswith(f'"{policy}";r={remaining};t='), value
    reset = int(value.rsplit("t=", 1)[1])
    assert 0 <= reset <= window


def assert_quota_exceeded(
    response: httpx.Response,
    policy: str,
    quota: int,
    window: int,
    others: tuple[str, ...] | None = None,
) -> int:
    """Checks a refusal and returns its Retry-After seconds."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == QUOTA_EXCEEDED
    assert body["status"] == 429
    assert body["policy"] == policy
    assert policy in body["detail"]
    assert_limited_headers(response, policy, quota, window, remaining=0, others=others)
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    return int(retry_after)
