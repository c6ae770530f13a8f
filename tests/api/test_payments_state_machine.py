"""The transition table: statuses never move backwards, whatever order events arrive in."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from api.auth.models import User
from api.db import Database
from api.payments.events import record_and_apply
from api.payments.models import Payment
from api.payments.state_machine import (
    STATUSES,
    TRANSITIONS,
    Change,
    PaymentSnapshot,
    PaymentStatus,
    decide,
)
from api.payments.webhook_signature import StripeEventPayload
from tests.conftest import delete_all_rows

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FINAL: set[PaymentStatus] = {"canceled", "refunded", "disputed"}


def snapshot(status: PaymentStatus, at: datetime | None = T0, refunded: int = 0) -> PaymentSnapshot:
    return PaymentSnapshot(status=status, status_event_created_at=at, amount_refunded=refunded)


def test_every_status_has_a_row_and_final_statuses_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    for status in FINAL:
        assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize("later", ["processing", "requires_payment_method", "failed"])
def test_nothing_leaves_succeeded_except_refunds_and_disputes(later: PaymentStatus) -> None:
    assert not decide(snapshot("succeeded"), Change(later, T0 + timedelta(minutes=1)))


def test_an_older_event_loses_even_where_the_table_allows_it() -> None:
    current = snapshot("failed", at=T0)
    assert not decide(current, Change("processing", T0 - timedelta(seconds=1)))
    assert decide(current, Change("processing", T0))
    assert decide(current, Change("processing", T0 + timedelta(seconds=1)))


def test_partial_refunds_only_grow() -> None:
    current = snapshot("partially_refunded", refunded=500)
    later = T0 + timedelta(seconds=1)
    assert decide(current, Change("partially_refunded", later, amount_refunded=700))
    assert not decide(current, Change("partially_refunded", later, amount_refunded=500))
    assert not decide(current, Change("partially_refunded", later, amount_refunded=300))


def test_the_same_status_again_is_not_a_change() -> None:
    assert not decide(snapshot("processing"), Change("processing", T0 + timedelta(seconds=5)))


def test_every_delivery_order_of_a_payments_events_ends_refunded() -> None:
    """processing -> succeeded -> partially_refunded -> refunded, delivered in all 24 orders."""
    history: list[Change] = [
        Change("processing", T0),
        Change("succeeded", T0 + timedelta(seconds=1)),
        Change("partially_refunded", T0 + timedelta(seconds=2), amount_refunded=100),
        Change("refunded", T0 + timedelta(seconds=3), amount_refunded=1000),
    ]
    for order in itertools.permutations(history):
        state = snapshot("requires_payment_method", at=None)
        for change in order:
            if decide(state, change):
                refunded = change.amount_refunded or state.amount_refunded
                state = snapshot(change.status, change.event_created_at, refunded)
        assert (state.status, state.amount_refunded) == ("refunded", 1000), order


def test_a_decline_then_a_successful_retry_in_any_order_ends_succeeded() -> None:
    history = [
        Change("processing", T0),
        Change("failed", T0 + timedelta(seconds=1)),
        Change("processing", T0 + timedelta(seconds=2)),
        Change("succeeded", T0 + timedelta(seconds=3)),
    ]
    for order in itertools.permutations(history):
        state = snapshot("requires_payment_method", at=None)
        for change in order:
            if decide(state, change):
                state = snapshot(change.status, change.event_created_at)
        assert state.status == "succeeded", order


def _event(change: Change, intent_id: str, amount: int) -> StripeEventPayload:
    """A Stripe event that asks for `change` (shapes trimmed to what the handlers read)."""
    if change.status in ("partially_refunded", "refunded"):
        event_type = "charge.refunded"
        data = {
            "id": f"ch_{intent_id}",
            "amount": amount,
            "amount_refunded": change.amount_refunded,
            "payment_intent": intent_id,
        }
    elif change.status == "disputed":
        event_type, data = "charge.dispute.created", {"id": "dp_1", "payment_intent": intent_id}
    else:
        suffix = {"failed": "payment_failed"}.get(change.status, change.status)
        event_type, data = f"payment_intent.{suffix}", {"id": intent_id, "metadata": {}}
    return StripeEventPayload(
        id=f"evt_{uuid.uuid4().hex}",
        type=event_type,
        created_at=change.event_created_at,
        object=data,
        raw="{}",
    )


async def test_the_database_applies_exactly_what_the_table_decides(database_url: str) -> None:
    """Every status x every requested change, older and newer: the conditional UPDATE of the
    webhook agrees with `decide`, the specification."""
    amount = 1000
    requested: list[tuple[PaymentStatus, int | None]] = [
        ("processing", None),
        ("succeeded", None),
        ("failed", None),
        ("canceled", None),
        ("partially_refunded", 100),
        ("partially_refunded", 300),
        ("refunded", amount),
        ("disputed", None),
    ]
    changes = [
        Change(status, T0 + offset, amount_refunded=refunded)
        for offset in (timedelta(seconds=-1), timedelta(seconds=1))
        for status, refunded in requested
    ]
    database = Database(database_url)
    user = User(email=f"sm-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
    cases: list[tuple[PaymentSnapshot, Change, str]] = []
    async with database.sessions() as session:
        session.add(user)
        await session.flush()
        for status in STATUSES:
            for change in changes:
                intent_id = f"pi_{uuid.uuid4().hex[:20]}"
                current = snapshot(status, refunded=200 if status == "partially_refunded" else 0)
                session.add(
                    Payment(
                        user_id=user.id,
                        price_id="price_x",
                        quantity=1,
                        amount=amount,
                        currency="usd",
                        status=status,
                        amount_refunded=current.amount_refunded,
                        status_event_created_at=T0,
                        stripe_payment_intent_id=intent_id,
                    )
                )
                cases.append((current, change, intent_id))
        await session.commit()
    try:
        for current, change, intent_id in cases:
            outcome = await record_and_apply(database, _event(change, intent_id, amount))
            async with database.sessions() as session:
                stored = await session.scalar(
                    select(Payment).where(col(Payment.stripe_payment_intent_id) == intent_id)
                )
            assert stored is not None
            expected = change.status if decide(current, change) else current.status
            assert (stored.status, outcome.result) == (
                expected,
                "processed" if decide(current, change) else "ignored",
            ), (current, change)
    finally:
        await database.dispose()
        delete_all_rows(database_url)
