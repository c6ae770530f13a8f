"""Prices and payments over HTTP, with Stripe played by localstripe."""

from __future__ import annotations

import uuid

import httpx
import stripe
from fastapi import FastAPI
from prometheus_client import REGISTRY

from tests.api.payments_support import (
    charge_object,
    confirm_with_test_card,
    count_payment_intents,
    create_payment,
    deliver,
    emulator_event,
    make_event,
    user_headers,
)

pytest_plugins = ("tests.api.stripe_emulator",)


async def test_prices_are_the_bundled_catalog(payments_client: httpx.AsyncClient) -> None:
    response = await payments_client.get("/v1/prices")

    assert response.status_code == 200
    prices = {price["id"]: price for price in response.json()}
    assert prices["price_onboarding_usd"] == {
        "id": "price_onboarding_usd",
        "product": "Slipway onboarding session",
        "unit_amount": 4900,
        "currency": "usd",
        "type": "one_time",
        "interval": None,
        "interval_count": None,
        "entitlements": [],
    }
    assert prices["price_team_monthly"] == {
        "id": "price_team_monthly",
        "product": "Slipway Team (monthly)",
        "unit_amount": 4900,
        "currency": "usd",
        "type": "recurring",
        "interval": "month",
        "interval_count": 1,
        "entitlements": ["api_access", "team_members", "premium_reports"],
    }


async def test_the_amount_comes_from_the_catalog(
    payments_client: httpx.AsyncClient, stripe_client: stripe.StripeClient
) -> None:
    headers = await user_headers(payments_client)
    created_before = REGISTRY.get_sample_value("payments_created_total", {"currency": "eur"}) or 0

    payment = await create_payment(
        payments_client, headers, price_id="price_team_seat_eur", quantity=3
    )

    assert payment["amount"] == 3 * 1200
    assert payment["currency"] == "eur"
    assert payment["status"] == "requires_payment_method"
    assert payment["client_secret"].startswith(payment["stripe_payment_intent_id"])
    intent = stripe_client.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"])
    assert (intent.amount, intent.currency) == (3600, "eur")
    assert intent.metadata["payment_id"] == payment["id"]
    assert REGISTRY.get_sample_value("payments_created_total", {"currency": "eur"}) == (
        created_before + 1
    )


async def test_creating_needs_an_idempotency_key(payments_client: httpx.AsyncClient) -> None:
    headers = await user_headers(payments_client)
    body = {"price_id": "price_onboarding_usd", "quantity": 1}

    missing = await payments_client.post("/v1/payments", json=body, headers=headers)
    too_long = await payments_client.post(
        "/v1/payments", json=body, headers={**headers, "Idempotency-Key": "k" * 256}
    )

    assert missing.status_code == 400
    assert missing.headers["content-type"] == "application/problem+json"
    assert too_long.status_code == 400
    listed = await payments_client.get("/v1/payments", headers=headers)
    assert listed.json()["items"] == []


async def test_the_same_key_and_body_replays_the_first_response(
    payments_client: httpx.AsyncClient, stripe_client: stripe.StripeClient
) -> None:
    headers = {**(await user_headers(payments_client)), "Idempotency-Key": "order-42"}
    body = {"price_id": "price_credits_usd", "quantity": 2}
    intents_before = count_payment_intents(stripe_client)

    first = await payments_client.post("/v1/payments", json=body, headers=headers)
    again = await payments_client.post("/v1/payments", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count_payment_intents(stripe_client) == intents_before + 1


async def test_the_same_key_with_another_body_is_refused(
    payments_client: httpx.AsyncClient,
) -> None:
    headers = {**(await user_headers(payments_client)), "Idempotency-Key": "order-43"}
    await payments_client.post(
        "/v1/payments", json={"price_id": "price_credits_usd", "quantity": 1}, headers=headers
    )

    conflicting = await payments_client.post(
        "/v1/payments", json={"price_id": "price_credits_usd", "quantity": 5}, headers=headers
    )

    assert conflicting.status_code == 422
    assert conflicting.json()["type"].endswith("/idempotency-key-reused")


async def test_keys_belong_to_their_user(payments_client: httpx.AsyncClient) -> None:
    body = {"price_id": "price_credits_usd", "quantity": 1}
    alice = {**(await user_headers(payments_client)), "Idempotency-Key": "shared-key"}
    bob = {**(await user_headers(payments_client)), "Idempotency-Key": "shared-key"}

    first = await payments_client.post("/v1/payments", json=body, headers=alice)
    second = await payments_client.post("/v1/payments", json=body, headers=bob)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


async def test_unknown_prices_and_bad_quantities_are_refused(
    payments_client: httpx.AsyncClient,
) -> None:
    headers = {**(await user_headers(payments_client)), "Idempotency-Key": "bad-input"}
    cases = [
        {"price_id": "price_nope", "quantity": 1},
        {"price_id": "price_onboarding_usd", "quantity": 0},
        {"price_id": "price_onboarding_usd", "quantity": 1, "amount": 1},
        {"price_id": "price_onboarding_usd", "quantity": "many"},
    ]
    for body in cases:
        response = await payments_client.post("/v1/payments", json=body, headers=headers)
        assert response.status_code == 422, body


async def test_payments_are_listed_newest_first_one_page_at_a_time(
    payments_client: httpx.AsyncClient,
) -> None:
    headers = await user_headers(payments_client)
    created = [await create_payment(payments_client, headers) for _ in range(3)]
    await create_payment(payments_client, await user_headers(payments_client))  # someone else's

    first = (await payments_client.get("/v1/payments?limit=2", headers=headers)).json()
    cursor = first["next_cursor"]
    second = (
        await payments_client.get(
            "/v1/payments", params={"limit": 2, "cursor": cursor}, headers=headers
        )
    ).json()

    listed = [payment["id"] for payment in first["items"] + second["items"]]
    assert listed == [payment["id"] for payment in reversed(created)]
    assert second["next_cursor"] is None
    bad_cursor = await payments_client.get("/v1/payments?cursor=bm9wZQ", headers=headers)
    assert bad_cursor.status_code == 422


async def test_other_users_payments_are_not_found(payments_client: httpx.AsyncClient) -> None:
    owner = await user_headers(payments_client)
    payment = await create_payment(payments_client, owner)
    stranger = await user_headers(payments_client)

    mine = await payments_client.get(f"/v1/payments/{payment['id']}", headers=owner)
    theirs = await payments_client.get(f"/v1/payments/{payment['id']}", headers=stranger)
    missing = await payments_client.get(f"/v1/payments/{uuid.uuid4()}", headers=owner)

    assert mine.status_code == 200
    assert mine.json()["id"] == payment["id"]
    assert theirs.status_code == 404
    assert missing.status_code == 404


async def test_payment_endpoints_need_a_token(payments_client: httpx.AsyncClient) -> None:
    response = await payments_client.get("/v1/payments")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_refunds_are_for_admins(payments_client: httpx.AsyncClient) -> None:
    headers = await user_headers(payments_client)
    payment = await create_payment(payments_client, headers)

    response = await payments_client.post(
        f"/v1/payments/{payment['id']}/refund", json={}, headers=headers
    )

    assert response.status_code == 403


async def test_pay_then_refund_end_to_end(
    payments_client: httpx.AsyncClient,
    payments_app: FastAPI,
    stripe_client: stripe.StripeClient,
) -> None:
    customer = await user_headers(payments_client)
    admin = await user_headers(payments_client, admin_app=payments_app)
    payment = await create_payment(payments_client, customer, price_id="price_onboarding_usd")
    intent_id = payment["stripe_payment_intent_id"]

    # The customer pays; Stripe (the emulator) confirms and records payment_intent.succeeded,
    # which it delivers signed.
    confirm_with_test_card(stripe_client, intent_id)
    succeeded = emulator_event(stripe_client, "payment_intent.succeeded", intent_id)
    assert (await deliver(payments_client, succeeded)).json()["result"] == "processed"
    paid = await payments_client.get(f"/v1/payments/{payment['id']}", headers=customer)
    assert paid.json()["status"] == "succeeded"

    # Too much, then a partial refund, then the rest.
    too_much = await payments_client.post(
        f"/v1/payments/{payment['id']}/refund", json={"amount": 5000}, headers=admin
    )
    assert too_much.status_code == 422
    partial = await payments_client.post(
        f"/v1/payments/{payment['id']}/refund", json={"amount": 900}, headers=admin
    )
    assert partial.status_code == 202, partial.text
    assert partial.json()["amount"] == 900
    await _deliver_charge_refunded(payments_client, stripe_client, payment, intent_id)
    status = (await payments_client.get(f"/v1/payments/{payment['id']}", headers=customer)).json()
    assert status["status"] == "partially_refunded"

    rest = await payments_client.post(f"/v1/payments/{payment['id']}/refund", headers=admin)
    assert rest.status_code == 202, rest.text
    assert rest.json()["amount"] == 4000
    # The refund is Stripe's to carry out: the status follows its event, not the 202.
    pending = (await payments_client.get(f"/v1/payments/{payment['id']}", headers=customer)).json()
    assert pending["status"] == "partially_refunded"
    await _deliver_charge_refunded(payments_client, stripe_client, payment, intent_id)
    final = (await payments_client.get(f"/v1/payments/{payment['id']}", headers=customer)).json()
    assert final["status"] == "refunded"

    again = await payments_client.post(f"/v1/payments/{payment['id']}/refund", headers=admin)
    assert again.status_code == 409


async def _deliver_charge_refunded(
    client: httpx.AsyncClient,
    stripe_client: stripe.StripeClient,
    payment: dict[str, object],
    intent_id: str,
) -> None:
    """localstripe refunds but sends no charge.refunded: build it from its charge's state."""
    intent = stripe_client.v1.payment_intents.retrieve(intent_id)
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else None
    charge = stripe_client.v1.charges.retrieve(charge_id or intent.latest_charge.id)  # type: ignore[union-attr]
    data_object = {
        **charge_object(payment, amount_refunded=charge.amount_refunded),
        "id": charge.id,
        "amount": charge.amount,
    }
    response = await deliver(client, make_event("charge.refunded", data_object))
    assert response.json()["result"] == "processed", response.text


async def test_a_plan_cannot_be_bought_as_a_one_off_payment(
    payments_client: httpx.AsyncClient, stripe_client: stripe.StripeClient
) -> None:
    headers = await user_headers(payments_client)
    intents_before = count_payment_intents(stripe_client)

    response = await payments_client.post(
        "/v1/payments",
        json={"price_id": "price_team_monthly", "quantity": 1},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )

    assert response.status_code == 422
    assert response.json()["type"].endswith("/recurring-price")
    assert count_payment_intents(stripe_client) == intents_before
