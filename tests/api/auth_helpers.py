"""Helpers for tests of any area that need an authenticated user or an admin.

`await register_and_login(client)` registers a fresh user over HTTP and logs in; pass
`admin_app=app` (the app behind `client`) to make that user an admin first. The result is the
token pair plus `email`, `password`, `user_id` and ready-made `headers`.

An app can also be started with a bootstrap admin:
`make_settings(url, bootstrap_admin_email=..., bootstrap_admin_password=...)`.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from api.auth import service
from api.auth.keys import generate_private_key_pem
from api.settings import Settings
from tests.conftest import make_settings

STRONG_PASSWORD = "correct-horse-battery-staple-42"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def make_admin(app: FastAPI, email: str) -> None:
    """Promote an existing user through the service layer (there is no HTTP endpoint for it)."""
    async with app.state.database.sessions() as db:
        assert await service.set_role(db, email, "admin"), f"no user {email}"


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


async def register_and_login(
    client: httpx.AsyncClient,
    email: str | None = None,
    password: str | None = None,
    admin_app: FastAPI | None = None,
) -> dict[str, Any]:
    email = email or unique_email()
    password = password or STRONG_PASSWORD
    registered = await client.post("/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    if admin_app is not None:
        await make_admin(admin_app, email)
    pair = await login(client, email, password)
    return {
        **pair,
        "email": registered.json()["email"],
        "password": password,
        "user_id": registered.json()["id"],
        "headers": bearer(pair["access_token"]),
    }


# Keys for tests that need to sign tokens themselves (attack suite, key rotation). Generated
# once per test session; never written anywhere.
NEWEST_KEY_PEM = generate_private_key_pem()
PREVIOUS_KEY_PEM = generate_private_key_pem()


def keyed_settings(database_url: str, *pems: str, **overrides: Any) -> Settings:
    """Test settings whose JWT_PRIVATE_KEYS are the given PEMs (newest first)."""
    keys = "\n".join(pems or (NEWEST_KEY_PEM, PREVIOUS_KEY_PEM))
    return make_settings(database_url, jwt_private_keys=keys, **overrides)
