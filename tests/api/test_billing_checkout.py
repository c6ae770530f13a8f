"""Checkout, the customer portal, one Customer per user under concurrency, and the OpenAPI
description of every billing operation."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest_asyncio
import stripe
from fastapi import FastAPI

from tests.api.auth_helpers import register_and_login
from tests.api.billing_emulator import BillingStripe
from tests.api.billing_support import (
    BILLING_ORIGIN,
    billing_settings,
    entitlements_of,
    premium_report_status,
    subscription_of,
)
from tests.api.payments_support import deliver, user_headers
from tests.conftest import AppHarness, delete_all_rows

pytest_plugins = ("tests.api.stripe_emulator",)

SUCCESS = f"{BILLING_ORIGIN}/billing/done?session={{CHECKOUT_SESSION_ID}}"
CANCEL = f"{BILLING_ORIGIN}/billing/canceled"


async def _checkout(
    client: httpx.AsyncClient, headers: dict[str, str], price_id: str, **urls: str
) -> httpx.Response:
    body = {"price_id": price_id, "success_url": SUCCESS, "cancel_url": CANCEL, **urls}
    return await client.post("/v1/billing/checkout", json=body, headers=headers)


async def test_a_new_user_buys_a_monthly_plan_through_checkout(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)

    response = await _checkout(billing_client, headers, "price_team_monthly")

    assert response.status_code == 201, response.text
    session = response.json()
    assert session["url"].startswith("https://checkout.stripe.com/")
    at_stripe = billing_stripe.checkout_sessions[session["id"]]
    assert at_stripe["mode"] == "subscription"
    assert at_stripe["line_items"] == [{"price": "price_team_monthly", "quantity": "1"}]
    assert at_stripe["success_url"] == SUCCESS

    # The customer pays on Stripe's page; only checkout.session.completed reaches us.
    completed = billing_stripe.complete_checkout(session["id"])
    delivered = await deliver(billing_client, completed)

    assert delivered.json()["result"] == "processed"
    current = await subscription_of(billing_client, headers)
    assert current["id"] == completed["data"]["object"]["subscription"]
    assert current["status"] == "active"
    assert current["price_id"] == "price_team_monthly"
    assert await entitlements_of(billing_client, headers) == [
        "api_access",
        "premium_reports",
        "team_members",
    ]
    assert await premium_report_status(billing_client, headers) == 200
    # The subscription's own events, arriving late, change nothing.
    subscription_id = current["id"]
    late = billing_stripe.event("customer.subscription.created", subscription_id)
    assert (await deliver(billing_client, late)).json()["result"] == "ignored"
    assert (await subscription_of(billing_client, headers))["status"] == "active"
    again = await _checkout(billing_client, headers, "price_starter_monthly")
    assert again.status_code == 409


async def test_a_one_time_checkout_becomes_a_payment(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    response = await _checkout(billing_client, headers, "price_onboarding_usd")
    assert response.status_code == 201, response.text
    at_stripe = billing_stripe.checkout_sessions[response.json()["id"]]
    assert at_stripe["mode"] == "payment"
    assert at_stripe["line_items"][0]["price_data"]["unit_amount"] == "4900"

    completed = billing_stripe.complete_checkout(response.json()["id"])
    assert (await deliver(billing_client, completed)).json()["result"] == "processed"

    payments = (await billing_client.get("/v1/payments", headers=headers)).json()["items"]
    assert [(p["price_id"], p["amount"], p["status"]) for p in payments] == [
        ("price_onboarding_usd", 4900, "succeeded")
    ]
    assert payments[0]["stripe_payment_intent_id"] == completed["data"]["object"]["payment_intent"]


async def test_redirects_are_limited_to_the_configured_origins(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    sessions_before = len(billing_stripe.checkout_sessions)

    for urls in (
        {"success_url": "https://evil.example.net/steal"},
        {"cancel_url": "https://app.example.com.evil.example.net/"},
        {"success_url": "http://app.example.com/plain-http"},
        {"success_url": "https://user@app.example.com/"},
        {"success_url": "javascript:alert(1)"},
        {"success_url": "https://[::1/unclosed"},
        {"cancel_url": "https://app.example.com\t.evil.example.net/"},
    ):
        response = await _checkout(billing_client, headers, "price_team_monthly", **urls)
        assert response.status_code == 422, urls
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/redirect-not-allowed")
    for return_url in ("https://evil.example.net/", "https://[::1"):
        portal = await billing_client.post(
            "/v1/billing/portal", json={"return_url": return_url}, headers=headers
        )
        assert portal.status_code == 422
    assert len(billing_stripe.checkout_sessions) == sessions_before


async def test_the_portal_link_belongs_to_the_users_customer(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    return_url = f"{BILLING_ORIGIN}/account"

    first = await billing_client.post(
        "/v1/billing/portal", json={"return_url": return_url}, headers=headers
    )
    second = await billing_client.post(
        "/v1/billing/portal", json={"return_url": return_url}, headers=headers
    )

    assert first.status_code == 200, first.text
    assert first.json()["url"].startswith("https://billing.stripe.com/p/session/")
    sessions = billing_stripe.portal_sessions[-2:]
    assert sessions[0]["return_url"] == return_url
    assert sessions[0]["customer"] == sessions[1]["customer"]  # one Customer, reused
    assert {s["url"] for s in sessions} == {first.json()["url"], second.json()["url"]}


@pytest_asyncio.fixture(scope="module")
async def postgres_billing_app(
    app_harness: AppHarness, postgres_url: str, billing_stripe: BillingStripe
) -> FastAPI:
    return await app_harness.start(billing_settings(postgres_url, billing_stripe.url))


async def test_ten_concurrent_first_subscriptions_make_one_customer(
    postgres_billing_app: FastAPI, postgres_url: str, localstripe_url: str
) -> None:
    async with AppHarness.client(postgres_billing_app) as client:
        user = await register_and_login(client)

        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/billing/subscriptions",
                    json={"price_id": "price_team_monthly"},
                    headers={**user["headers"], "Idempotency-Key": str(uuid.uuid4())},
                )
                for _ in range(10)
            )
        )

    delete_all_rows(postgres_url)
    assert {response.status_code for response in responses} == {201}, [r.text for r in responses]
    stripe_client = stripe.StripeClient("sk_test_x", base_addresses={"api": localstripe_url})
    customers = stripe_client.v1.customers.list(params={"email": user["email"], "limit": 100})
    assert len(customers.data) == 1
    assert customers.data[0].to_dict()["metadata"]["user_id"] == user["user_id"]


async def test_every_billing_operation_documents_its_problems(
    billing_client: httpx.AsyncClient,
) -> None:
    schema = (await billing_client.get("/openapi.json")).json()
    operations = {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        if path.startswith("/v1/billing/")
        for method, operation in item.items()
    }

    assert set(operations) == {
        ("POST", "/v1/billing/checkout"),
        ("POST", "/v1/billing/subscriptions"),
        ("GET", "/v1/billing/subscription"),
        ("POST", "/v1/billing/subscription/cancel"),
        ("POST", "/v1/billing/subscription/resume"),
        ("POST", "/v1/billing/subscription/change"),
        ("POST", "/v1/billing/portal"),
        ("GET", "/v1/billing/premium-report"),
    }
    for key, operation in operations.items():
        statuses = operation["responses"]
        successes = [status for status in statuses if status.startswith("2")]
        assert len(successes) == 1, key
        assert list(statuses[successes[0]]["content"]) == ["application/json"], key
        for status in ("401", "429", "503"):
            assert status in statuses, (key, status)
        for status, response in statuses.items():
            if not status.startswith("2"):
                assert list(response["content"]) == ["application/problem+json"], (key, status)
    assert "403" in operations[("GET", "/v1/billing/premium-report")]["responses"]
    assert "400" in operations[("POST", "/v1/billing/subscriptions")]["responses"]
