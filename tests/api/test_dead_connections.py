"""Pooled connections the server closed (restart, failover, idle timeout) cost no request.

The pool no longer pings each connection on checkout (a round trip per request); instead a
transaction's first statement is retried once on a fresh connection when its connection
turns out to be dead. Here PostgreSQL ends every connection of the app's pool between two
requests, as a restart would; the next requests must all succeed.
"""

from __future__ import annotations

import asyncio

import psycopg
from sqlalchemy.engine import make_url

from tests.api.auth_helpers import register_and_login
from tests.conftest import AppHarness, delete_all_rows, make_settings


def _terminate_other_connections(database_url: str) -> int:
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(ended[0]) if ended else 0


async def test_requests_after_the_server_closed_every_pooled_connection_succeed(
    app_harness: AppHarness, postgres_url: str
) -> None:
    app = await app_harness.start(make_settings(postgres_url))
    try:
        async with AppHarness.client(app) as client:
            user = await register_and_login(client)
            # Several connections in the pool, all idle afterwards.
            warm = await asyncio.gather(
                *(client.get("/v1/users/me", headers=user["headers"]) for _ in range(4))
            )
            assert {response.status_code for response in warm} == {200}

            assert _terminate_other_connections(postgres_url) >= 1

            for _ in range(4):
                response = await client.get("/v1/users/me", headers=user["headers"])
                assert response.status_code == 200, response.text
    finally:
        await app.state.database.dispose()
        delete_all_rows(postgres_url)
