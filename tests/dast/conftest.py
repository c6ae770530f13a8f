"""The target of the DAST run: a live API with a registered user and an admin.

Locally (`make dast`, and `make test` in CI) the API runs as it is deployed: uvicorn on a
scratch PostgreSQL database, Redis for rate limits and the Stripe emulator for payments; the
admin is created with `python -m api.auth create-admin`, the user registers over HTTP.

Against a deployment (the weekly run against staging, .github/workflows/security.yml) set
DAST_BASE_URL and the tester accounts' DAST_USER_EMAIL / DAST_USER_PASSWORD /
DAST_ADMIN_EMAIL / DAST_ADMIN_PASSWORD: nothing is started then.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.payments_support import STRIPE_SECRET_KEY, WEBHOOK_SECRET
from tests.api.stripe_emulator import billing_stripe, localstripe_url
from tests.conftest import FIXTURES, ROOT, TEST_JWT_PRIVATE_KEY, migrate
from tests.live_server import LiveServer, serve_api
from tests.services import create_scratch_postgres_database, drop_postgres_database, require_redis

# The Stripe emulator's fixtures: billing's server in front of localstripe.
__all__ = ["billing_stripe", "localstripe_url"]

REMOTE_URL = os.environ.get("DAST_BASE_URL", "")
CREATE_ADMIN_TIMEOUT_SECONDS = 60
REGISTER_ATTEMPTS = 3
DAST_RATE_LIMITS_FILE = FIXTURES / "ratelimits_dast.toml"
PASSWORD = f"dast-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass(frozen=True)
class DastTarget:
    base_url: str
    user: Account
    admin: Account
    # Local runs only: the server's own log, read for tracebacks after the run.
    server: LiveServer | None


def log_in(base_url: str, email: str, password: str) -> Account:
    response = httpx.post(
        f"{base_url}/v1/auth/login", json={"email": email, "password": password}, timeout=30
    )
    response.raise_for_status()
    return Account(email, password, response.json()["access_token"])


def _create_admin(environment: dict[str, str], email: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "api.auth", "create-admin", "--email", email, "--password-stdin"],
        input=f"{password}\n",
        text=True,
        cwd=ROOT,
        env={**os.environ, **environment},
        check=True,
        capture_output=True,
        timeout=CREATE_ADMIN_TIMEOUT_SECONDS,
    )


def _register(base_url: str, email: str, password: str) -> None:
    body = {"email": email, "password": password}
    for _ in range(REGISTER_ATTEMPTS):
        response = httpx.post(f"{base_url}/v1/auth/register", json=body, timeout=30)
        # A statement timeout on a loaded machine is a 503 with Retry-After: retry as told.
        if response.status_code != 503:
            break
        time.sleep(int(response.headers.get("retry-after", "1")))
    assert response.status_code == 201, response.text


def _remote_target(base_url: str) -> DastTarget:
    base_url = base_url.rstrip("/")
    return DastTarget(
        base_url=base_url,
        user=log_in(base_url, os.environ["DAST_USER_EMAIL"], os.environ["DAST_USER_PASSWORD"]),
        admin=log_in(base_url, os.environ["DAST_ADMIN_EMAIL"], os.environ["DAST_ADMIN_PASSWORD"]),
        server=None,
    )


@dataclass(frozen=True)
class LocalDeployment:
    """What the local servers share: database, Redis, Stripe emulator and the admin."""

    environment: dict[str, str]
    admin_email: str


@pytest.fixture(scope="session")
def local_deployment(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    redis_url = require_redis()
    stripe_url: str = request.getfixturevalue("billing_stripe").url
    database_url = create_scratch_postgres_database()
    try:
        migrate(database_url)
        environment = {
            "APP_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "STRIPE_API_BASE": stripe_url,
            "BILLING_REDIRECT_ORIGINS": "https://app.example.com",
        }
        admin_email = f"dast-admin-{uuid.uuid4().hex[:8]}@example.com"
        _create_admin(environment, admin_email, PASSWORD)
        yield LocalDeployment(environment, admin_email)
    finally:
        drop_postgres_database(database_url)


def _local_target(server: LiveServer, admin_email: str) -> DastTarget:
    user_email = f"dast-user-{uuid.uuid4().hex[:8]}@example.com"
    _register(server.url, user_email, PASSWORD)
    return DastTarget(
        base_url=server.url,
        user=log_in(server.url, user_email, PASSWORD),
        admin=log_in(server.url, admin_email, PASSWORD),
        server=server,
    )


@pytest.fixture(scope="session")
def dast_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DastTarget]:
    """For schemathesis: every quota raised, so generated requests reach the handlers."""
    if REMOTE_URL:
        yield _remote_target(REMOTE_URL)
        return
    deployment: LocalDeployment = request.getfixturevalue("local_deployment")
    environment = {**deployment.environment, "RATE_LIMITS_FILE": str(DAST_RATE_LIMITS_FILE)}
    with serve_api(environment, tmp_path_factory.mktemp("dast") / "uvicorn.log") as server:
        yield _local_target(server, deployment.admin_email)


@pytest.fixture(scope="session")
def attack_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DastTarget]:
    """For the attack suite: the bundled rate-limit policies, as production runs them. The
    limiter is the in-process one (no REDIS_URL), so every run starts with fresh quotas
    instead of meeting the last run's in a shared Redis; the Redis backend applies the same
    policies (tests/api/test_ratelimit*.py). Loopback is a trusted proxy, as the load balancer
    is in a deployment, so each attack comes from an address of its own (X-Forwarded-For) and
    one attack's per-address quotas never decide another's outcome."""
    if REMOTE_URL:
        yield _remote_target(REMOTE_URL)
        return
    deployment: LocalDeployment = request.getfixturevalue("local_deployment")
    environment = {**deployment.environment, "REDIS_URL": "", "TRUSTED_PROXIES": "127.0.0.1/32"}
    with serve_api(environment, tmp_path_factory.mktemp("attacks") / "uvicorn.log") as server:
        yield _local_target(server, deployment.admin_email)
