"""Refresh-token rotation, reuse detection, concurrent refreshes and session lifetime."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from api.auth.models import RefreshTokenFamily, as_utc, utc_now
from tests.api.auth_helpers import bearer, login, register_and_login


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_reusing_a_spent_token_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    first = user["refresh_token"]
    second = (await refresh(client, first)).json()["refresh_token"]
    third_pair = (await refresh(client, second)).json()

    # An attacker (or a confused client) presents a token that was already spent...
    replay = await refresh(client, first)
    assert replay.status_code == 401
    # ...and the whole session dies, including the newest token its legitimate holder has.
    assert (await refresh(client, third_pair["refresh_token"])).status_code == 401
    # The session's access tokens name it (sid), so they stop working at once too.
    for access_token in (user["access_token"], third_pair["access_token"]):
        assert (await client.get("/v1/users/me", headers=bearer(access_token))).status_code == 401
    fresh = await login(client, user["email"], user["password"])
    sessions = await client.get("/v1/auth/sessions", headers=bearer(fresh["access_token"]))
    assert len(sessions.json()) == 1


async def test_reuse_in_one_session_leaves_other_sessions_alone(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    other_device = await login(client, user["email"], user["password"])
    await refresh(client, user["refresh_token"])
    await refresh(client, user["refresh_token"])  # reuse: this family is revoked
    assert (await refresh(client, other_device["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_have_exactly_one_winner(client: httpx.AsyncClient) -> None:
    """Both requests run at once, each on its own database connection.

    Several sessions race at the same time, so the two refreshes of a session really overlap
    in the database (the loser waits on the winner's row lock on PostgreSQL).
    """
    user = await register_and_login(client)
    tokens = [user["refresh_token"]]
    tokens += [
        (await login(client, user["email"], user["password"]))["refresh_token"] for _ in range(4)
    ]

    responses = await asyncio.gather(*(refresh(client, token) for token in tokens for _ in (1, 2)))

    for index in range(len(tokens)):
        pair = responses[2 * index : 2 * index + 2]
        statuses = sorted(response.status_code for response in pair)
        assert statuses == [200, 401], f"session {index}: {statuses}"
        # The loser presented a just-spent token: that is reuse, so the session is revoked and
        # the winner's new refresh token is dead too.
        [winner] = [response for response in pair if response.status_code == 200]
        assert (await refresh(client, winner.json()["refresh_token"])).status_code == 401
    fresh = await login(client, user["email"], user["password"])
    sessions = await client.get("/v1/auth/sessions", headers=bearer(fresh["access_token"]))
    assert len(sessions.json()) == 1  # every raced session is gone


async def test_refresh_never_extends_the_session_lifetime(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_and_login(client)
    async with app.state.database.sessions() as db:
        created = await db.scalar(select(RefreshTokenFamily))
    assert created is not None
    lifetime = as_utc(created.expires_at) - as_utc(created.created_at)
    assert lifetime == timedelta(seconds=app.state.settings.refresh_token_ttl_seconds)

    token = (await refresh(client, user["refresh_token"])).json()["refresh_token"]
    async with app.state.database.sessions() as db:
        after = await db.scalar(select(RefreshTokenFamily))
        assert after is not None
        assert as_utc(after.expires_at) == as_utc(created.expires_at)
        # Time passes beyond the absolute lifetime (the row is moved, not the clock).
        await db.execute(
            update(RefreshTokenFamily).values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await db.commit()

    assert (await refresh(client, token)).status_code == 401
    assert (await client.get("/v1/auth/sessions", headers=user["headers"])).json() == []


async def test_junk_refresh_tokens_are_401(client: httpx.AsyncClient) -> None:
    for junk in ["x", "a" * 256, "../../etc/passwd", "' OR 1=1 --", "\u0000\u00ff"]:
        response = await refresh(client, junk)
        assert response.status_code == 401, junk
    assert (await refresh(client, "a" * 257)).status_code == 422
