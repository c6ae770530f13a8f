"""The transition table: statuses never move backwards, whatever order events arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from api.payments.state_machine import (
    STATUSES,
    TRANSITIONS,
    Change,
    PaymentSnapshot,
    PaymentStatus,
    decide,
)

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
