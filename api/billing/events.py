"""Stripe's billing events applied to the mirror, inside the webhook's transaction.

api.payments.events stores every event once and calls `apply_billing_event` for these types
in the same transaction, so billing events get the payment events' guarantees: verified,
stored and applied together, duplicates acknowledged without effect, retried on failure.
Events about a Customer that is not one of ours are acknowledged and counted, never applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.models import utc_now
from api.billing import mirror
from api.billing.stripe_objects import (
    CheckoutSessionSnapshot,
    parse_checkout_session,
    parse_invoice,
    parse_subscription,
)
from api.payments.models import Payment
from api.payments.prices import Price, PriceCatalog
from api.payments.webhook_signature import StripeEventPayload

BillingOutcome = Literal["processed", "stale", "unknown_customer", "ignored"]

SUBSCRIPTION_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.trial_will_end",
    }
)
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
INVOICE_FINALIZED = "invoice.finalized"
CHECKOUT_COMPLETED = "checkout.session.completed"
BILLING_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        *SUBSCRIPTION_EVENTS,
        INVOICE_PAID,
        INVOICE_PAYMENT_FAILED,
        INVOICE_FINALIZED,
        CHECKOUT_COMPLETED,
    }
)


@dataclass(frozen=True, slots=True)
class BillingResult:
    outcome: BillingOutcome


async def _subscription_event(session: AsyncSession, event: StripeEventPayload) -> BillingResult:
    snapshot = parse_subscription(event.object)
    user_id = await mirror.user_of_customer(session, snapshot.customer_id)
    if user_id is None:
        return BillingResult("unknown_customer")
    written = await mirror.write_subscription(
        session, snapshot, user_id=user_id, observed_at=event.created_at
    )
    return BillingResult(written)


async def _invoice_event(session: AsyncSession, event: StripeEventPayload) -> BillingResult:
    invoice = parse_invoice(event.object)
    user_id = await mirror.user_of_customer(session, invoice.customer_id)
    if user_id is None:
        return BillingResult("unknown_customer")
    written = await mirror.write_invoice(
        session, invoice, user_id=user_id, observed_at=event.created_at
    )
    if invoice.subscription_id is not None and event.type != INVOICE_FINALIZED:
        # A first invoice that fails leaves the subscription incomplete (Stripe's rule too):
        # only a subscription that was being paid falls past due.
        moved = await mirror.move_subscription(
            session,
            invoice.subscription_id,
            to="active" if event.type == INVOICE_PAID else "past_due",
            sources=("incomplete", "past_due", "unpaid")
            if event.type == INVOICE_PAID
            else ("active", "trialing"),
            observed_at=event.created_at,
        )
        if moved == "processed":
            written = "processed"
    return BillingResult(written)


async def _checkout_completed(
    session: AsyncSession, event: StripeEventPayload, catalog: PriceCatalog | None
) -> BillingResult:
    """A subscription-mode Checkout: the mirror row exists from now on, even if the
    subscription's own events are late. Its details come from the catalog price the session
    was created for; the subscription's events refine them."""
    checkout = parse_checkout_session(event.object)
    if checkout.customer_id is None:
        return BillingResult("unknown_customer")
    user_id = await mirror.user_of_customer(session, checkout.customer_id)
    if user_id is None or str(user_id) != checkout.client_reference_id:
        return BillingResult("unknown_customer")
    price = catalog.get(checkout.metadata.get("price_id", "")) if catalog else None
    if price is None:
        return BillingResult("ignored")
    if checkout.mode == "payment" and not price.is_recurring:
        return await _checkout_payment(session, checkout, user_id, price, event)
    if checkout.mode != "subscription" or checkout.subscription_id is None:
        return BillingResult("ignored")
    if not price.is_recurring or price.interval is None:
        return BillingResult("ignored")
    paid = checkout.payment_status == "paid"
    values = {
        "id": checkout.subscription_id,
        "stripe_customer_id": checkout.customer_id,
        # Paid: the first invoice is, so the subscription is active. Otherwise (a trial, a
        # delayed payment method) wait for the subscription's own events to say.
        "status": "active" if paid else "incomplete",
        "status_event_created_at": event.created_at if paid else None,
        "stripe_price_id": price.stripe_price_id,
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "interval": price.interval,
        "interval_count": price.interval_count or 1,
        "quantity": 1,
        "cancel_at_period_end": False,
        "stripe_created_at": event.created_at,
    }
    written = await mirror.insert_subscription_if_absent(session, values, user_id=user_id)
    return BillingResult(written)


async def _checkout_payment(
    session: AsyncSession,
    checkout: CheckoutSessionSnapshot,
    user_id: uuid.UUID,
    price: Price,
    event: StripeEventPayload,
) -> BillingResult:
    """A payment-mode Checkout becomes a payment like POST /v1/payments makes, bound to its
    PaymentIntent, whose own events then move it as usual."""
    if checkout.payment_intent_id is None or checkout.amount_total is None:
        return BillingResult("ignored")
    now = utc_now()
    statement = (
        mirror.insert_statement(session)(Payment)
        .values(
            id=uuid.uuid4(),
            user_id=user_id,
            price_id=price.id,
            quantity=1,
            amount=checkout.amount_total,
            currency=checkout.currency or price.currency,
            status="succeeded" if checkout.payment_status == "paid" else "processing",
            amount_refunded=0,
            stripe_payment_intent_id=checkout.payment_intent_id,
            status_event_created_at=event.created_at,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["stripe_payment_intent_id"])
        .returning(col(Payment.id))
    )
    inserted = (await session.execute(statement)).first()
    return BillingResult("processed" if inserted is not None else "stale")


async def apply_billing_event(
    session: AsyncSession, event: StripeEventPayload, catalog: PriceCatalog | None
) -> BillingResult:
    if event.type in SUBSCRIPTION_EVENTS:
        return await _subscription_event(session, event)
    if event.type in (INVOICE_PAID, INVOICE_PAYMENT_FAILED, INVOICE_FINALIZED):
        return await _invoice_event(session, event)
    if event.type == CHECKOUT_COMPLETED:
        return await _checkout_completed(session, event, catalog)
    return BillingResult("ignored")
