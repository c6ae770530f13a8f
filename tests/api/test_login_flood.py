"""Password spraying from one address: a per-IP cap, and no starving the database pool.

Regression tests for an outside probe's finding: 300 logins from one IP with 300 different
emails all reached the password check (the login limit counts IP + email), and because each
held a pooled PostgreSQL connection while argon2 waited for a hashing slot, /readyz failed
and /v1/users/me stalled for seconds meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
import pytest_asyncio

from tests.api.auth_helpers import register_and_login, unique_email
from tests.api.ratelimit_harness import assert_quota_exceeded, start_limited_app
from tests.conftest import AppHarness, delete_all_rows, make_settings, migrate

FLOOD = 100  # argon2 at ~25 ms a hash on two slots: seconds of queued hashing


@pytest.fixture(scope="module")
def flood_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('flood') / 'flood.db'}"
    migrate(url)
    return url


async def test_one_address_spraying_many_emails_is_capped(flood_database: str) -> None:
    async with AsyncExitStack() as stack:
        limited = await start_limited_app(stack, flood_database, redis_url=None)
        async with limited.client() as client:
            statuses = []
            for _ in range(40):
                response = await client.post(
                    "/v1/auth/login", json={"email": unique_email(), "password": "guess-123456"}
                )
                statuses.append(response.status_code)
            assert statuses == [401] * 30 + [429] * 10
            assert_quota_exceeded(response, "auth-ip", 30, 60, others=("login",))
            # Registration and the OAuth2 form draw on the same per-address allowance ...
            register = await client.post(
                "/v1/auth/register", json={"email": unique_email(), "password": "guess-123456"}
            )
            assert_quota_exceeded(register, "auth-ip", 30, 60, others=("register",))
        # ... while another address is unaffected.
        async with limited.client("192.0.2.7") as elsewhere:
            response = await elsewhere.post(
                "/v1/auth/token", data={"username": unique_email(), "password": "guess-123456"}
            )
            assert response.status_code == 401


@pytest_asyncio.fixture
async def pg_client(app_harness: AppHarness, postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_harness.start(make_settings(postgres_url))
    async with AppHarness.client(app, timeout=120) as client:
        yield client
    await app.state.database.dispose()  # its pool would hold connections until the session ends
    delete_all_rows(postgres_url)


async def test_a_login_flood_leaves_the_pool_to_other_requests(
    pg_client: httpx.AsyncClient,
) -> None:
    user = await register_and_login(pg_client)
    finished: list[str] = []
    first_answer = asyncio.Event()

    async def call(name: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await pg_client.request(method, path, **kwargs)  # type: ignore[arg-type]
        finished.append(name)
        first_answer.set()
        return response

    logins = [
        asyncio.create_task(
            call(
                "login",
                "POST",
                "/v1/auth/login",
                json={"email": user["email"] if i % 10 == 0 else unique_email(), "password": "x"},
            )
        )
        for i in range(FLOOD)
    ]
    await first_answer.wait()  # the flood is under way: hashing is queued from now on
    ready = await call("readyz", "GET", "/readyz")
    me = await call("me", "GET", "/v1/users/me", headers=user["headers"])
    statuses = {response.status_code for response in await asyncio.gather(*logins)}
    assert statuses == {401}
    assert ready.status_code == 200, ready.text
    assert me.status_code == 200, me.text
    # Both answered while most of the flood was still waiting for its password check.
    assert finished.index("me") < FLOOD // 2, finished.index("me")
