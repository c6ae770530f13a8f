"""A failing statement leaves no email, password hash, client_secret or Stripe payload behind.

Regression test for an outside probe's finding: SQLAlchemy rendered the statement's
parameters into exceptions, so the unhandled-error log carried emails and password hashes,
and `stripe_events.error` stored `str(exc)`, the whole event payload included. Failures are
forced by PostgreSQL itself (a trigger raising on the row the request writes), and every log
record is rendered by the app's own JSON formatter, extras included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from api.logging_config import JsonFormatter
from tests.api.auth_helpers import STRONG_PASSWORD, register_and_login, unique_email
from tests.api.payments_support import deliver, make_event, payments_settings
from tests.conftest import AppHarness, delete_all_rows

pytest_plugins = ("tests.api.stripe_emulator",)

FAIL = (
    "CREATE OR REPLACE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'forced failure' USING DETAIL = 'row: ' || row_to_json(NEW)::text; END $$"
)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def forced_failure(postgres_url: str) -> Iterator[psycopg.Connection]:
    """Run SQL on the test database; triggers created through it are dropped afterwards."""
    with psycopg.connect(_libpq(postgres_url), autocommit=True) as connection:
        connection.execute(FAIL)
        try:
            yield connection
        finally:
            for table in ("users", "payments", "stripe_events"):
                connection.execute(f"DROP TRIGGER IF EXISTS forced_failure ON {table}")
            delete_all_rows(postgres_url)


@pytest_asyncio.fixture
async def client(
    app_harness: AppHarness, postgres_url: str, localstripe_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_harness.start(payments_settings(postgres_url, localstripe_url))
    async with AppHarness.client(app) as http:
        yield http
    await app.state.database.dispose()  # its pool would hold connections until the session ends


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


def _fail_on(connection: psycopg.Connection, table: str, when: str = "INSERT") -> None:
    connection.execute(
        f"CREATE TRIGGER forced_failure BEFORE {when} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION forced_failure()"
    )


async def test_a_failed_registration_logs_no_email_or_hash(
    client: httpx.AsyncClient,
    forced_failure: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fail_on(forced_failure, "users")
    email = unique_email("leak")
    caplog.set_level(logging.INFO)  # the level the app logs at
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    logged = _logged(caplog)
    assert "database error" in logged  # the failure is logged, by class and SQLSTATE
    assert "P0001" in logged
    for secret in (email, "$argon2", STRONG_PASSWORD):
        assert secret not in logged


async def test_a_failed_payment_update_logs_no_client_secret(
    client: httpx.AsyncClient,
    forced_failure: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await register_and_login(client)
    _fail_on(forced_failure, "payments", when="UPDATE")
    caplog.set_level(logging.INFO)  # the level the app logs at
    response = await client.post(
        "/v1/payments",
        json={"price_id": "price_credits_usd", "quantity": 1},
        headers={**user["headers"], "Idempotency-Key": "leak-check"},
    )
    assert response.status_code == 500, response.text
    logged = _logged(caplog)
    assert "database error" in logged
    for secret in ("_secret_", "pi_", user["email"]):
        assert secret not in logged


async def test_a_failed_webhook_stores_and_logs_no_payload(
    client: httpx.AsyncClient,
    forced_failure: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The first insert (the event applied) fails; the failure record (unprocessed) is kept.
    forced_failure.execute(
        "CREATE TRIGGER forced_failure BEFORE INSERT ON stripe_events FOR EACH ROW "
        "WHEN (NEW.processed_at IS NOT NULL) EXECUTE FUNCTION forced_failure()"
    )
    customer = unique_email("leak-customer")
    event = make_event(
        "payment_intent.succeeded",
        {"id": "pi_leak", "object": "payment_intent", "receipt_email": customer},
    )
    caplog.set_level(logging.INFO)  # the level the app logs at
    response = await deliver(client, event)
    assert response.status_code == 500, response.text  # Stripe redelivers
    stored = forced_failure.execute(
        "SELECT error, processed_at FROM stripe_events WHERE id = %s", (event["id"],)
    ).fetchone()
    assert stored is not None
    error, processed_at = stored
    assert processed_at is None
    assert error == "database error: RaiseException (SQLSTATE P0001)"
    logged = _logged(caplog)
    assert "stripe event processing failed" in logged
    for secret in (customer, "pi_leak", "receipt_email"):
        assert secret not in logged
