"""reconcile-payments repairs the subscription mirror: a customer.subscription.updated the
webhook never received is found and replayed; drift that no event explains is reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.__main__ import main
from tests.api.billing_emulator import BillingStripe
from tests.api.billing_support import deliver_invoice_event, subscribe, subscription_of
from tests.api.payments_support import STRIPE_SECRET_KEY, user_headers

pytest_plugins = ("tests.api.stripe_emulator",)


@pytest.fixture
def flow_environment(
    database_url: str, billing_stripe: BillingStripe, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The settings the flow reads: the test database, Stripe at the billing emulator."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_SECRET_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", billing_stripe.url)
    return database_url


def _run(tmp_path: Path, database_url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    argv = ["--reports-dir", str(tmp_path), "reconcile-payments", "--database-url", database_url]
    code = main([*argv, "--since", since, *extra])
    reports = sorted((tmp_path / "reconcile-payments").glob("*/report.json"))
    return code, json.loads(reports[-1].read_text())


def _billing_mismatches(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for mismatch in report["mismatches"]:
        if mismatch["stripe_object_id"]:
            found.setdefault(mismatch["kind"], set()).add(mismatch["stripe_object_id"])
    return found


async def test_a_missed_subscription_update_is_found_and_replayed(
    billing_client: httpx.AsyncClient,
    billing_stripe: BillingStripe,
    flow_environment: str,
    tmp_path: Path,
) -> None:
    headers = await user_headers(billing_client)
    created = await subscribe(billing_client, headers)
    billing_stripe.pay(created["id"])
    await deliver_invoice_event(billing_client, billing_stripe, "invoice.paid", created["id"])
    # The customer cancels in Stripe's portal; that webhook delivery never reaches us.
    billing_stripe.portal_cancel(created["id"])
    missed = billing_stripe.event("customer.subscription.updated", created["id"])
    assert (await subscription_of(billing_client, headers))["cancel_at_period_end"] is False

    code, dry = _run(tmp_path, flow_environment, "--dry-run")

    assert code == 1
    assert created["id"] in _billing_mismatches(dry)["subscription_differs"]
    assert missed["id"] in {replay["event_id"] for replay in dry["replays"]}

    code, report = _run(tmp_path, flow_environment)

    replayed = {replay["event_id"]: replay["result"] for replay in report["replays"]}
    assert replayed[missed["id"]] == "processed"
    assert created["id"] not in _billing_mismatches(report).get("subscription_differs", set())
    assert report["summary"]["subscriptions_checked"] >= 1
    repaired = await subscription_of(billing_client, headers)
    assert repaired["cancel_at_period_end"] is True
    assert repaired["status"] == "active"


async def test_drift_without_an_event_is_reported_by_kind(
    billing_client: httpx.AsyncClient,
    billing_stripe: BillingStripe,
    flow_environment: str,
    tmp_path: Path,
) -> None:
    headers = await user_headers(billing_client)
    kept = await subscribe(billing_client, headers)
    # Stripe's side changes with no event (older than Stripe keeps, or a dashboard edit).
    billing_stripe.subscriptions[kept["id"]]["status"] = "unpaid"
    invoice_id = billing_stripe.subscriptions[kept["id"]]["latest_invoice"]
    billing_stripe.invoices[invoice_id]["status"] = "void"
    billing_stripe.events = [
        event for event in billing_stripe.events if event["data"]["object"]["id"] != kept["id"]
    ]

    code, report = _run(tmp_path, flow_environment)

    assert code == 1
    found = _billing_mismatches(report)
    assert kept["id"] in found["subscription_differs"]
    assert report["summary"]["mismatches"]["subscription_differs"] >= 1
    assert (await subscription_of(billing_client, headers))["status"] == "incomplete"
