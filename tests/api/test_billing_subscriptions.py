"""Subscriptions over HTTP: the API, Stripe (our billing emulator in front of localstripe) and
the webhook keeping the mirror, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, update

from api.billing.models import Subscription
from tests.api.auth_helpers import register_and_login
from tests.api.billing_emulator import BillingStripe
from tests.api.billing_support import (
    GRACE_PERIOD_DAYS,
    billing_metric,
    deliver_invoice_event,
    deliver_latest,
    entitlements_of,
    premium_report_status,
    subscribe,
    subscription_of,
)
from tests.api.payments_support import deliver, make_event, user_headers

pytest_plugins = ("tests.api.stripe_emulator",)

TEAM = ["api_access", "premium_reports", "team_members"]
STARTER = ["api_access"]


async def _active(
    client: httpx.AsyncClient, stripe: BillingStripe, price_id: str = "price_team_monthly"
) -> tuple[dict[str, str], str]:
    """A user whose subscription to `price_id` is paid: (headers, subscription id)."""
    headers = await user_headers(client)
    created = await subscribe(client, headers, price_id)
    stripe.pay(created["id"])
    assert await deliver_invoice_event(client, stripe, "invoice.paid", created["id"]) == (
        "processed"
    )
    return headers, created["id"]


async def test_subscribe_then_pay_grants_the_plans_entitlements(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    none = await billing_client.get("/v1/billing/subscription", headers=headers)
    assert none.status_code == 404
    assert none.headers["content-type"] == "application/problem+json"

    created = await subscribe(billing_client, headers)

    assert created["status"] == "incomplete"
    assert created["client_secret"]
    assert (await subscription_of(billing_client, headers))["status"] == "incomplete"
    assert await entitlements_of(billing_client, headers) == []
    refused = await billing_client.get("/v1/billing/premium-report", headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["entitlement"] == "premium_reports"

    billing_stripe.pay(created["id"])  # the customer confirms the payment with Stripe.js
    processed_before = billing_metric("invoice.paid", "processed")
    result = await deliver_invoice_event(
        billing_client, billing_stripe, "invoice.paid", created["id"]
    )

    assert result == "processed"
    assert billing_metric("invoice.paid", "processed") == processed_before + 1
    current = await subscription_of(billing_client, headers)
    assert current["status"] == "active"
    assert current["price_id"] == "price_team_monthly"
    assert current["entitlements"] == TEAM
    assert current["current_period_end"] is not None
    assert await entitlements_of(billing_client, headers) == TEAM
    assert await premium_report_status(billing_client, headers) == 200


async def test_subscribing_twice_and_key_reuse(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    key = str(uuid.uuid4())
    first = await subscribe(billing_client, headers, key=key)

    replayed = await subscribe(billing_client, headers, key=key)
    other_body = await billing_client.post(
        "/v1/billing/subscriptions",
        json={"price_id": "price_starter_monthly"},
        headers={**headers, "Idempotency-Key": key},
    )
    no_key = await billing_client.post(
        "/v1/billing/subscriptions", json={"price_id": "price_team_monthly"}, headers=headers
    )
    one_time = await billing_client.post(
        "/v1/billing/subscriptions",
        json={"price_id": "price_onboarding_usd"},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )

    assert replayed == first
    assert other_body.status_code == 422
    assert no_key.status_code == 400
    assert one_time.status_code == 422
    billing_stripe.pay(first["id"])
    await deliver_invoice_event(billing_client, billing_stripe, "invoice.paid", first["id"])
    again = await billing_client.post(
        "/v1/billing/subscriptions",
        json={"price_id": "price_starter_monthly"},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-subscribed")


def _days_pass(database_url: str, subscription_id: str, days: int) -> None:
    """Time passes for the grace period: the subscription fell past due `days` ago."""
    engine = create_engine(database_url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)  # type: ignore[arg-type]
                .values(past_due_since=datetime.now(UTC) - timedelta(days=days))
            )
    finally:
        engine.dispose()


async def test_a_failed_renewal_keeps_entitlements_through_the_grace_period_only(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe, database_url: str
) -> None:
    headers, subscription_id = await _active(billing_client, billing_stripe)

    billing_stripe.fail_renewal(subscription_id)
    result = await deliver_invoice_event(
        billing_client, billing_stripe, "invoice.payment_failed", subscription_id
    )

    assert result == "processed"
    past_due = await subscription_of(billing_client, headers)
    assert past_due["status"] == "past_due"
    assert past_due["entitlements"] == TEAM
    ends = datetime.fromisoformat(past_due["grace_period_ends_at"])
    expected = datetime.now(UTC) + timedelta(days=GRACE_PERIOD_DAYS)
    assert abs(ends - expected) < timedelta(minutes=1)
    # Stripe's own update arrives too; it does not restart the grace period.
    updated = "customer.subscription.updated"
    assert await deliver_latest(billing_client, billing_stripe, updated, subscription_id) in (
        "processed",
        "ignored",
    )
    assert (await subscription_of(billing_client, headers))["grace_period_ends_at"] == (
        past_due["grace_period_ends_at"]
    )

    _days_pass(database_url, subscription_id, GRACE_PERIOD_DAYS + 1)

    lapsed = await subscription_of(billing_client, headers)
    assert lapsed["status"] == "past_due"
    assert lapsed["entitlements"] == []
    assert await entitlements_of(billing_client, headers) == []
    assert await premium_report_status(billing_client, headers) == 403


async def test_cancel_at_period_end_keeps_entitlements_until_stripe_ends_it(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers, subscription_id = await _active(billing_client, billing_stripe)

    canceled = await billing_client.post("/v1/billing/subscription/cancel", headers=headers)

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["cancel_at_period_end"] is True
    assert canceled.json()["status"] == "active"
    assert billing_stripe.subscriptions[subscription_id]["cancel_at_period_end"] is True
    assert await premium_report_status(billing_client, headers) == 200
    immediately = await billing_client.post(
        "/v1/billing/subscription/cancel", json={"immediately": True}, headers=headers
    )
    assert immediately.status_code == 403  # only administrators end a paid period early

    resumed = await billing_client.post("/v1/billing/subscription/resume", headers=headers)
    assert resumed.status_code == 200
    assert resumed.json()["cancel_at_period_end"] is False
    await billing_client.post("/v1/billing/subscription/cancel", headers=headers)

    billing_stripe.end(subscription_id)  # the paid period is over
    deleted = "customer.subscription.deleted"
    assert await deliver_latest(billing_client, billing_stripe, deleted, subscription_id) == (
        "processed"
    )

    ended = await subscription_of(billing_client, headers)
    assert ended["status"] == "canceled"
    assert ended["entitlements"] == []
    assert await premium_report_status(billing_client, headers) == 403
    again = await billing_client.post("/v1/billing/subscription/cancel", headers=headers)
    assert again.status_code == 409


async def test_changing_plan_swaps_the_price_and_the_entitlements(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers, subscription_id = await _active(
        billing_client, billing_stripe, "price_starter_monthly"
    )
    assert await entitlements_of(billing_client, headers) == STARTER

    changed = await billing_client.post(
        "/v1/billing/subscription/change", json={"price_id": "price_team_yearly"}, headers=headers
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["price_id"] == "price_team_yearly"
    assert changed.json()["entitlements"] == TEAM
    stripe_side = billing_stripe.subscriptions[subscription_id]
    assert stripe_side["items"]["data"][0]["price"]["id"] == "price_team_yearly"
    assert stripe_side["pending_proration"] is True
    same = await billing_client.post(
        "/v1/billing/subscription/change", json={"price_id": "price_team_yearly"}, headers=headers
    )
    assert same.status_code == 409
    # Stripe's event about the change agrees with what the API already wrote.
    updated = "customer.subscription.updated"
    await deliver_latest(billing_client, billing_stripe, updated, subscription_id)
    assert (await subscription_of(billing_client, headers))["price_id"] == "price_team_yearly"


def _shifted(event: dict[str, Any], seconds: int) -> dict[str, Any]:
    """The same Stripe object in another event, `seconds` later (or earlier)."""
    data_object = copy.deepcopy(event["data"]["object"])
    return make_event(event["type"], data_object, created=event["created"] + seconds)


async def test_duplicate_and_out_of_order_subscription_events_never_regress(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers, subscription_id = await _active(billing_client, billing_stripe)
    created = billing_stripe.event("customer.subscription.created", subscription_id)
    updated = billing_stripe.event("customer.subscription.updated", subscription_id)
    stale_before = billing_metric("customer.subscription.created", "stale")
    duplicate_before = billing_metric("customer.subscription.updated", "duplicate")

    first = await deliver(billing_client, updated)
    duplicate = await deliver(billing_client, updated)
    late_created = await deliver(billing_client, created)  # `incomplete`, older: too late
    older_cancel = _shifted(updated, -60)
    older_cancel["data"]["object"]["status"] = "canceled"

    assert [r.json()["result"] for r in (first, duplicate, late_created)] == [
        "processed",
        "duplicate",
        "ignored",
    ]
    assert (await deliver(billing_client, older_cancel)).json()["result"] == "ignored"
    assert (await subscription_of(billing_client, headers))["status"] == "active"
    assert billing_metric("customer.subscription.created", "stale") == stale_before + 1
    assert billing_metric("customer.subscription.updated", "duplicate") == duplicate_before + 1

    # A newer event wins, and once canceled a subscription never comes back.
    newer_deleted = _shifted(updated, 60)
    newer_deleted["data"]["object"]["status"] = "canceled"
    assert (await deliver(billing_client, newer_deleted)).json()["result"] == "processed"
    newest_active = _shifted(updated, 120)
    assert (await deliver(billing_client, newest_active)).json()["result"] == "ignored"
    assert (await subscription_of(billing_client, headers))["status"] == "canceled"


async def test_events_about_unknown_customers_are_acknowledged_and_counted(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    _, subscription_id = await _active(billing_client, billing_stripe)
    stranger = billing_stripe.event("customer.subscription.updated", subscription_id)
    stranger["data"]["object"]["customer"] = "cus_not_ours"
    event = make_event("customer.subscription.updated", stranger["data"]["object"])
    before = billing_metric("customer.subscription.updated", "unknown_customer")

    response = await deliver(billing_client, event)

    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert billing_metric("customer.subscription.updated", "unknown_customer") == before + 1


def _sample(metrics_text: str, name: str, label: str, value: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get(label) == value:
                return float(sample.value)
    raise AssertionError(f"no {name}{{{label}={value!r}}}")


async def test_metrics_count_subscriptions_by_status_and_mrr_by_currency(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    await _active(billing_client, billing_stripe, "price_team_monthly")
    _, yearly = await _active(billing_client, billing_stripe, "price_team_yearly")
    await subscribe(billing_client, await user_headers(billing_client), "price_starter_monthly")
    billing_stripe.fail_renewal(yearly)
    await deliver_invoice_event(billing_client, billing_stripe, "invoice.payment_failed", yearly)

    text = (await billing_client.get("/metrics")).text

    assert _sample(text, "billing_subscriptions", "status", "active") == 1
    assert _sample(text, "billing_subscriptions", "status", "past_due") == 1
    assert _sample(text, "billing_subscriptions", "status", "incomplete") == 1
    assert _sample(text, "billing_subscriptions", "status", "canceled") == 0
    # 4900 a month, plus 49000 a year spread over 12 months; the incomplete one pays nothing.
    assert _sample(text, "billing_mrr", "currency", "usd") == round(4900 + 49000 / 12, 2)


async def test_an_administrator_ends_a_subscription_at_once(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe, billing_app: FastAPI
) -> None:
    admin = await register_and_login(billing_client, admin_app=billing_app)
    headers = admin["headers"]
    created = await subscribe(billing_client, headers)
    billing_stripe.pay(created["id"])
    await deliver_invoice_event(billing_client, billing_stripe, "invoice.paid", created["id"])
    assert await premium_report_status(billing_client, headers) == 200

    ended = await billing_client.post(
        "/v1/billing/subscription/cancel", json={"immediately": True}, headers=headers
    )

    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "canceled"
    assert ended.json()["entitlements"] == []
    assert billing_stripe.subscriptions[created["id"]]["status"] == "canceled"
    assert await premium_report_status(billing_client, headers) == 403


async def test_a_trial_grants_entitlements_and_its_ending_notice_is_applied(
    billing_client: httpx.AsyncClient, billing_stripe: BillingStripe
) -> None:
    headers = await user_headers(billing_client)
    created = await subscribe(billing_client, headers)
    trialing = copy.deepcopy(billing_stripe.subscriptions[created["id"]])
    trialing["status"] = "trialing"
    trialing["trial_end"] = trialing["created"] + 7 * 86_400
    notice = make_event(
        "customer.subscription.trial_will_end", trialing, created=trialing["created"] + 1
    )

    assert (await deliver(billing_client, notice)).json()["result"] == "processed"
    current = await subscription_of(billing_client, headers)
    assert current["status"] == "trialing"
    assert current["trial_end"] is not None
    assert current["entitlements"] == TEAM
