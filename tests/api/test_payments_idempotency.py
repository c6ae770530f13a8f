"""One Idempotency-Key, one payment, one PaymentIntent: under concurrency and lost answers."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
import pytest_asyncio
import stripe
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from tests.api.payments_support import (
    ReplayingStripe,
    count_payment_intents,
    database_contents,
    payments_settings,
    user_headers,
)
from tests.conftest import AppHarness, delete_all_rows

pytest_plugins = ("tests.api.stripe_emulator",)

BODY = {"price_id": "price_onboarding_usd", "quantity": 2}


@pytest_asyncio.fixture(scope="module")
async def postgres_payments_app(
    app_harness: AppHarness, postgres_url: str, localstripe_url: str
) -> FastAPI:
    return await app_harness.start(payments_settings(postgres_url, localstripe_url))


async def test_ten_concurrent_requests_with_one_key_make_one_payment(
    postgres_payments_app: FastAPI, postgres_url: str, stripe_client: stripe.StripeClient
) -> None:
    """Really concurrent: ten requests race on PostgreSQL connections of their own."""
    async with AppHarness.client(postgres_payments_app) as client:
        try:
            headers = {**(await user_headers(client)), "Idempotency-Key": "checkout-7"}
            intents_before = count_payment_intents(stripe_client)

            responses = await asyncio.gather(
                *(client.post("/v1/payments", json=BODY, headers=headers) for _ in range(10))
            )

            assert [response.status_code for response in responses] == [201] * 10
            assert len({response.text for response in responses}) == 1
            assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
            rows = database_contents(postgres_url)
            assert len(rows["payments"]) == 1
            assert len(rows["idempotency_keys"]) == 1
            assert count_payment_intents(stripe_client) == intents_before + 1
        finally:
            delete_all_rows(postgres_url)


async def test_a_lost_stripe_answer_is_retried_with_the_same_stripe_key(
    replaying_client: httpx.AsyncClient, replaying_stripe: ReplayingStripe
) -> None:
    headers = {**(await user_headers(replaying_client)), "Idempotency-Key": "order-1"}
    replaying_stripe.lose_answers = 1

    response = await replaying_client.post("/v1/payments", json=BODY, headers=headers)

    assert response.status_code == 201, response.text
    payment = response.json()
    assert list(replaying_stripe.intents) == [payment["stripe_payment_intent_id"]]
    # stripe-python retried once, with the key derived from the payment.
    assert replaying_stripe.requests == [f"slipway-payment-{payment['id']}"] * 2


async def test_a_failed_create_resumes_with_the_same_payment_intent(
    replaying_client: httpx.AsyncClient, replaying_stripe: ReplayingStripe, sqlite_url: str
) -> None:
    """Stripe made the PaymentIntent but every answer was lost: the client's retry with the
    same Idempotency-Key reuses the payment, hence the Stripe key, hence the PaymentIntent."""
    headers = {**(await user_headers(replaying_client)), "Idempotency-Key": "order-2"}
    replaying_stripe.lose_answers = 3  # the first attempt and both of stripe-python's retries

    failed = await replaying_client.post("/v1/payments", json=BODY, headers=headers)
    assert failed.status_code == 502
    assert failed.headers["content-type"] == "application/problem+json"

    retried = await replaying_client.post("/v1/payments", json=BODY, headers=headers)

    assert retried.status_code == 201, retried.text
    assert list(replaying_stripe.intents) == [retried.json()["stripe_payment_intent_id"]]
    assert len(set(replaying_stripe.requests)) == 1
    assert len(database_contents(sqlite_url)["payments"]) == 1


@pytest.mark.parametrize("path", ["/v1/payments", "/v1/webhooks/stripe"])
async def test_without_a_stripe_key_payments_are_not_configured(
    client: httpx.AsyncClient, path: str
) -> None:
    """The shared app has no STRIPE_* settings."""
    response = await client.post(path, json=BODY, headers={"Idempotency-Key": "k"})

    assert response.status_code == 503
    assert response.json()["detail"] == "payments are not configured"
    assert (await client.get("/v1/payments")).status_code == 503
    prices = await client.get("/v1/prices")
    assert prices.status_code == 200
    assert prices.json()


async def test_a_request_waiting_for_its_key_writes_nothing(
    app_harness: AppHarness, postgres_url: str, replaying_stripe: ReplayingStripe
) -> None:
    """Issue 12, finding 8: the waiter re-inserted and rolled back every 50 ms (a payment left
    hundreds of dead rows). Insert attempts are counted by a trigger drawing on a sequence,
    which a rollback does not undo."""
    app = await app_harness.start(payments_settings(postgres_url, replaying_stripe.url))
    replaying_stripe.reset()
    with psycopg.connect(_libpq(postgres_url), autocommit=True) as connection:
        connection.execute("CREATE SEQUENCE payment_insert_attempts")
        connection.execute(
            "CREATE FUNCTION count_payment_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM nextval('payment_insert_attempts'); RETURN NEW; END $$"
        )
        connection.execute(
            "CREATE TRIGGER count_payment_insert BEFORE INSERT ON payments "
            "FOR EACH ROW EXECUTE FUNCTION count_payment_insert()"
        )
        try:
            async with AppHarness.client(app) as client:
                headers = {**(await user_headers(client)), "Idempotency-Key": "slow-order"}
                replaying_stripe.delay_seconds = 1.0  # the first request holds the key
                first = asyncio.create_task(client.post("/v1/payments", json=BODY, headers=headers))
                while not replaying_stripe.requests:  # noqa: ASYNC110 - set by the emulator thread
                    await asyncio.sleep(0.01)
                waiting = await client.post("/v1/payments", json=BODY, headers=headers)
                assert (await first).status_code == 201
            assert waiting.status_code == 201
            assert waiting.headers.get("idempotent-replayed") == "true"
            attempts = connection.execute(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM payment_insert_attempts"
            ).fetchone()
            assert attempts == (1,)
        finally:
            connection.execute("DROP TRIGGER count_payment_insert ON payments")
            connection.execute("DROP FUNCTION count_payment_insert()")
            connection.execute("DROP SEQUENCE payment_insert_attempts")
            await app.state.database.dispose()  # no idle pool until the session ends
            delete_all_rows(postgres_url)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
