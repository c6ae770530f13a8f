"""reconcile-payments against the Stripe emulator (localstripe) on SQLite and PostgreSQL:
missed events replayed through the webhook service, what cannot be replayed reported by kind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy import create_engine, select
from sqlmodel import Session

from api.auth.models import User
from api.payments.models import Payment, StripeEvent
from api.payments.stripe_gateway import PaymentIntentInfo
from flows.__main__ import main
from flows.reconcile_payments.pipeline import compare_payment
from tests.conftest import delete_all_rows

# localstripe_url and stripe_client: the Stripe emulator the payments tests use.
pytest_plugins = ("tests.api.stripe_emulator",)

# The emulator accepts any test key; the flow gets it the way the API does, from the env.
STRIPE_SECRET_KEY = "sk_test_slipway_flows"


def confirm_with_test_card(client: stripe.StripeClient, payment_intent_id: str) -> None:
    """The customer's side of a checkout: Stripe's test Visa card, then confirm."""
    client.v1.payment_intents.update(payment_intent_id, params={"payment_method": "pm_card_visa"})
    client.v1.payment_intents.confirm(payment_intent_id)


def sync_url(database_url: str) -> str:
    return database_url.replace("sqlite+aiosqlite", "sqlite")


@pytest.fixture
def payments_database(
    database_url: str, localstripe_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The API's settings as the flow reads them: this database, payments on the emulator."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_SECRET_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe_url)
    yield database_url
    delete_all_rows(database_url)


def insert_payments(database_url: str, *payments: dict[str, Any]) -> list[uuid.UUID]:
    engine = create_engine(sync_url(database_url))
    try:
        with Session(engine) as session:
            user = User(email=f"{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
            session.add(user)
            session.flush()
            rows = [
                Payment(
                    user_id=user.id,
                    price_id="price_basic",
                    quantity=1,
                    currency="usd",
                    status="requires_payment_method",
                    **fields,
                )
                for fields in payments
            ]
            session.add_all(rows)
            session.commit()
            return [row.id for row in rows]
    finally:
        engine.dispose()


def stored(database_url: str) -> tuple[dict[uuid.UUID, str], set[str]]:
    engine = create_engine(sync_url(database_url))
    try:
        with Session(engine) as session:
            statuses = {p.id: p.status for p in session.scalars(select(Payment))}
            events = set(session.scalars(select(StripeEvent.id)))  # type: ignore[call-overload]
            return statuses, events
    finally:
        engine.dispose()


def run(tmp_path: Path, database_url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    argv = ["--reports-dir", str(tmp_path), "reconcile-payments", "--database-url", database_url]
    code = main([*argv, "--since", since, *extra])
    reports = sorted((tmp_path / "reconcile-payments").glob("*/report.json"))
    return code, json.loads(reports[-1].read_text())


def kinds(report: dict[str, Any]) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for mismatch in report["mismatches"]:
        found.setdefault(mismatch["kind"], set()).add(mismatch["payment_intent_id"])
    return found


def test_missed_events_are_replayed_and_the_rest_reported_by_kind(
    payments_database: str, stripe_client: stripe.StripeClient, tmp_path: Path
) -> None:
    intents = stripe_client.v1.payment_intents
    # Paid at Stripe, but the webhook never reached us: fixed by replaying its event.
    paid = intents.create(params={"amount": 2000, "currency": "usd"})
    confirm_with_test_card(stripe_client, paid.id)
    # Paid at Stripe with no local payment at all.
    stranger = intents.create(params={"amount": 500, "currency": "usd"})
    confirm_with_test_card(stripe_client, stranger.id)
    # Canceled at Stripe without an event we could replay.
    canceled = intents.create(params={"amount": 700, "currency": "usd"})
    intents.cancel(canceled.id)
    # Charged a different amount from what we recorded.
    other_amount = intents.create(params={"amount": 1500, "currency": "usd"})
    paid_id, _, _, _ = insert_payments(
        payments_database,
        {"amount": 2000, "stripe_payment_intent_id": paid.id},
        {"amount": 700, "stripe_payment_intent_id": canceled.id},
        {"amount": 1000, "stripe_payment_intent_id": other_amount.id},
        {"amount": 900, "stripe_payment_intent_id": f"pi_gone_{uuid.uuid4().hex[:8]}"},
    )

    code, dry = run(tmp_path, payments_database, "--dry-run")

    assert code == 1
    assert dry["dry_run"] is True
    assert any(r["result"] == "pending" for r in dry["replays"])
    assert paid.id in kinds(dry)["status_differs"]
    assert stored(payments_database)[0][paid_id] == "requires_payment_method"  # nothing changed

    code, report = run(tmp_path, payments_database)

    assert code == 1  # mismatches that replaying cannot fix remain
    statuses, events = stored(payments_database)
    assert statuses[paid_id] == "succeeded"
    assert {r["event_id"] for r in report["replays"]} <= events
    assert {r["result"] for r in report["replays"]} <= {"processed", "ignored"}
    found = kinds(report)
    assert paid.id not in found.get("status_differs", set())
    assert canceled.id in found["status_differs"]
    assert other_amount.id in found["amount_differs"]
    assert stranger.id in found["missing_locally"]
    assert len(found["missing_at_stripe"]) == 1
    assert report["summary"]["mismatches"]["missing_at_stripe"] == 1

    code, again = run(tmp_path, payments_database)

    assert again["replays"] == []  # every event is stored now: nothing is replayed twice
    assert kinds(again)["status_differs"] == {canceled.id}


def test_reconciliation_without_stripe_configured_fails_cleanly(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    argv = ["--reports-dir", str(tmp_path), "reconcile-payments", "--database-url", database_url]

    assert main(argv) == 2

    (report_path,) = (tmp_path / "reconcile-payments").glob("*/report.json")
    assert "STRIPE_SECRET_KEY" in json.loads(report_path.read_text())["error"]


@pytest.mark.parametrize(
    ("local", "stripe_status", "expected"),
    [
        ("failed", "requires_payment_method", []),
        ("refunded", "succeeded", []),
        ("disputed", "succeeded", []),
        ("processing", "succeeded", ["status_differs"]),
        ("succeeded", "canceled", ["status_differs"]),
    ],
)
def test_statuses_are_compared_by_what_stripe_keeps_on_the_payment_intent(
    local: str, stripe_status: str, expected: list[str]
) -> None:
    payment = Payment(
        user_id=uuid.uuid4(), price_id="p", quantity=1, amount=100, currency="usd", status=local
    )
    intent = PaymentIntentInfo("pi_1", stripe_status, 100, "usd", None, None, {})

    assert [m.kind for m in compare_payment(payment, intent)] == expected
