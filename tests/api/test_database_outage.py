"""A database outage answers 503 problem+json with Retry-After, never 500, and heals by itself.

Regression test for an outside probe's finding: with PostgreSQL unreachable or a statement
timing out, /v1/users/me, login, register, refresh, payments and the Stripe webhook answered
500 and logged ERROR. Here the app reaches the real PostgreSQL through a TCP proxy the test
cuts (every connection aborted, new ones refused) and restores on the same port: the same app
instance must serve again without a restart. A statement timeout is the server's own error
(SQLSTATE 57014, raised by a trigger, so the test needs no slow query).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from tests.api.auth_helpers import STRONG_PASSWORD, register_and_login, unique_email
from tests.api.payments_support import deliver, make_event, payments_settings
from tests.api.tcp_proxy import TcpProxy
from tests.conftest import AppHarness, delete_all_rows

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Outage:
    client: httpx.AsyncClient
    proxy: TcpProxy
    user: dict[str, Any]


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest_asyncio.fixture
async def outage(app_harness: AppHarness, postgres_url: str) -> AsyncIterator[Outage]:
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    # Stripe is configured but never reached: every call below fails at the database first.
    app = await app_harness.start(payments_settings(proxied, "http://127.0.0.1:9"))
    try:
        async with AppHarness.client(app) as client:
            yield Outage(client, proxy, await register_and_login(client))
    finally:
        await proxy.cut()
        await app.state.database.dispose()
        delete_all_rows(postgres_url)


def _calls(user: dict[str, Any]) -> dict[str, Call]:
    payment = {"price_id": "price_credits_usd", "quantity": 1}
    event = make_event("payment_intent.succeeded", {"id": "pi_outage", "object": "payment_intent"})
    credentials = {"email": user["email"], "password": user["password"]}
    return {
        "me": lambda c: c.get("/v1/users/me", headers=user["headers"]),
        "login": lambda c: c.post("/v1/auth/login", json=credentials),
        "register": lambda c: c.post(
            "/v1/auth/register", json={"email": unique_email(), "password": STRONG_PASSWORD}
        ),
        "refresh": lambda c: c.post(
            "/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}
        ),
        "payments": lambda c: c.post(
            "/v1/payments",
            json=payment,
            headers={**user["headers"], "Idempotency-Key": uuid.uuid4().hex},
        ),
        "payments-list": lambda c: c.get("/v1/payments", headers=user["headers"]),
        "webhook": lambda c: deliver(c, event),
    }


def _assert_unavailable(name: str, response: httpx.Response) -> None:
    assert response.status_code == 503, (name, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", name
    assert response.headers["Retry-After"].isdigit(), name
    body = response.json()
    assert body["type"] == "https://slipway.dev/problems/database-unavailable", name
    assert "postgres" not in response.text.lower(), name  # nothing about the connection


async def test_an_unreachable_database_answers_503_and_recovery_needs_no_restart(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _calls(outage.user)
    caplog.set_level(logging.WARNING)
    await outage.proxy.cut()
    for name, call in calls.items():
        _assert_unavailable(name, await call(outage.client))
    ready = await outage.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["database"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]

    await outage.proxy.start()  # the same port: the app was not told anything
    assert (await outage.client.get("/readyz")).status_code == 200
    me = await calls["me"](outage.client)
    assert me.status_code == 200, me.text
    login = await calls["login"](outage.client)
    assert login.status_code == 200, login.text


async def test_a_statement_timeout_answers_503(
    outage: Outage, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What PostgreSQL sends when statement_timeout fires, on the register and webhook paths."""
    with psycopg.connect(_libpq(postgres_url), autocommit=True) as connection:
        connection.execute(
            "CREATE FUNCTION slow_statement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'canceling statement due to statement timeout' "
            "USING ERRCODE = 'query_canceled'; END $$"
        )
        for table in ("users", "stripe_events"):
            connection.execute(
                f"CREATE TRIGGER slow_{table} BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION slow_statement()"
            )
    try:
        caplog.set_level(logging.WARNING)
        calls = _calls(outage.user)
        for name in ("register", "webhook"):
            _assert_unavailable(name, await calls[name](outage.client))
        assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    finally:
        with psycopg.connect(_libpq(postgres_url), autocommit=True) as connection:
            for table in ("users", "stripe_events"):
                connection.execute(f"DROP TRIGGER slow_{table} ON {table}")
            connection.execute("DROP FUNCTION slow_statement()")
