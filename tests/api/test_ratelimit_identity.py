"""The login limit counts the account the endpoint will authenticate, however the body spells it.

Regression tests for an outside probe's finding: the limiter keyed on the first `username`
of a form while the endpoint read the last, and only trimmed and lower-cased the email while
login normalises it fully (NFC, IDNA), so each spelling of one address had a fresh quota.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
import pytest_asyncio

from tests.api.auth_helpers import STRONG_PASSWORD, unique_email
from tests.api.ratelimit_harness import LimitedApp, assert_quota_exceeded, start_limited_app
from tests.conftest import migrate

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def identity_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('identity') / 'identity.db'}"
    migrate(url)
    return url


@pytest_asyncio.fixture
async def limited(identity_database: str) -> AsyncIterator[LimitedApp]:
    async with AsyncExitStack() as stack:
        yield await start_limited_app(stack, identity_database, redis_url=None)


async def _registered(client: httpx.AsyncClient, local: str) -> str:
    email = f"{local}@example.com"
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 201, response.text
    return email


def _attempted(response: httpx.Response) -> bool:
    """The endpoint checked a password (a wrong one is 401, a right one 200)."""
    return response.status_code in (200, 401)


async def test_duplicate_form_usernames_cannot_escape_the_account_limit(
    limited: LimitedApp,
) -> None:
    async with limited.client() as client:
        victim = await _registered(client, unique_email("victim").split("@")[0])
        attempts = 0
        for index in range(15):
            body = (
                f"username=decoy{index}%40example.com&username={victim.replace('@', '%40')}"
                "&password=wrong-password-123"
            )
            response = await client.post("/v1/auth/token", content=body, headers=FORM)
            attempts += _attempted(response)
            if not _attempted(response):
                assert response.status_code == 422, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["errors"][0]["loc"] == ["body", "username"]
        assert attempts == 0
        # Both identity fields at once are ambiguous too.
        body = f"email=decoy%40example.com&username={victim}&password=wrong-password-123"
        response = await client.post("/v1/auth/token", content=body, headers=FORM)
        assert response.status_code == 422, response.text


async def test_every_spelling_of_an_address_shares_one_quota(limited: LimitedApp) -> None:
    async with limited.client() as client:
        local = unique_email("alice").split("@")[0]
        victim = await _registered(client, local)
        spellings = [
            victim,
            victim.upper(),
            f"  {victim}\t",
            f"{local}@\uff45xample.com",  # fullwidth e
            f"{local}@ex\uff41mple.com",  # fullwidth a
            f"{local}@EXAMPLE.com",
            f"{local.upper()}@\uff25xample.com",  # fullwidth capital E
        ]
        # Each spelling reaches the same account: the right password logs in with any of them.
        ok = await client.post(
            "/v1/auth/login", json={"email": spellings[3], "password": STRONG_PASSWORD}
        )
        assert ok.status_code == 200, ok.text
        attempts = 1
        refused = None
        for index in range(20):
            spelling = spellings[index % len(spellings)]
            if index % 2:
                response = await client.post(
                    "/v1/auth/login", json={"email": spelling, "password": "wrong-password-1"}
                )
            else:
                response = await client.post(
                    "/v1/auth/token",
                    data={"username": spelling, "password": "wrong-password-1"},
                )
            if response.status_code == 429:
                refused = response
                break
            assert _attempted(response), response.text
            attempts += 1
        assert refused is not None, "no spelling of the address was ever limited"
        assert attempts == 10
        assert_quota_exceeded(refused, "login", 10, 60)


async def test_duplicate_json_keys_resolve_like_the_endpoint(limited: LimitedApp) -> None:
    """A JSON object with the key twice: both the limiter and the endpoint take the last."""
    async with limited.client() as client:
        victim = await _registered(client, unique_email("bob").split("@")[0])
        statuses = []
        for index in range(11):
            body = (
                f'{{"email": "decoy{index}@example.com", "email": "{victim}", '
                '"password": "wrong-password-123"}'
            )
            response = await client.post(
                "/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
            )
            statuses.append(response.status_code)
        assert statuses == [401] * 10 + [429]
