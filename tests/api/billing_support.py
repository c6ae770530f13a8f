"""Helpers for the billing tests: subscribing over HTTP and reading what the user sees."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from prometheus_client import REGISTRY

from api.settings import Settings
from tests.api.billing_emulator import BillingStripe
from tests.api.payments_support import deliver, payments_settings

BILLING_ORIGIN = "https://app.example.com"
GRACE_PERIOD_DAYS = 3


def billing_settings(database_url: str, stripe_api_base: str) -> Settings:
    """The API with Stripe at `stripe_api_base`, redirects to BILLING_ORIGIN, a short grace."""
    return payments_settings(
        database_url,
        stripe_api_base,
        billing_redirect_origins=[BILLING_ORIGIN],
        billing_grace_period_days=GRACE_PERIOD_DAYS,
    )


def billing_metric(event_type: str, outcome: str) -> float:
    labels = {"type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("billing_webhook_events_total", labels) or 0.0


async def subscribe(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    price_id: str = "price_team_monthly",
    key: str | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/billing/subscriptions",
        json={"price_id": price_id},
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliver_latest(
    client: httpx.AsyncClient, stripe: BillingStripe, event_type: str, object_id: str
) -> str:
    """Deliver the emulator's latest `event_type` about `object_id`; the webhook's result."""
    response = await deliver(client, stripe.event(event_type, object_id))
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


async def deliver_invoice_event(
    client: httpx.AsyncClient, stripe: BillingStripe, event_type: str, subscription_id: str
) -> str:
    """Deliver the latest `event_type` about the subscription's latest invoice."""
    invoice_id = stripe.subscriptions[subscription_id]["latest_invoice"]
    return await deliver_latest(client, stripe, event_type, invoice_id)


async def subscription_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/billing/subscription", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def entitlements_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/v1/users/me", headers=headers)
    assert response.status_code == 200, response.text
    granted: list[str] = response.json()["entitlements"]
    return granted


async def premium_report_status(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get("/v1/billing/premium-report", headers=headers)).status_code
