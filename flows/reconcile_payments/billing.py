"""reconcile-payments, billing part: the subscription and invoice mirror against Stripe.

Missed billing events are replayed with the payment ones (the pipeline replays every handled
type). What replaying could not fix is reported by kind: a mirrored subscription whose status,
price or cancel-at-period-end differs from Stripe's, one Stripe no longer knows, a subscription
of one of our Customers that the mirror lacks, an invoice whose status differs. Nothing is
written from here: the webhook's ordering rule owns the mirror.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from sqlalchemy import or_, select
from sqlmodel import col

from api.billing.mirror import TERMINAL
from api.billing.models import BillingCustomer, Invoice, Subscription
from api.billing.stripe_objects import SubscriptionSnapshot
from api.db import Database
from api.payments.stripe_gateway import PaymentProviderError, StripeGateway
from flows.reconcile_payments.findings import (
    CONCURRENT_STRIPE_CALLS,
    Mismatch,
    ReconciliationError,
)

BILLING_MISMATCH_KINDS: Final[tuple[str, ...]] = (
    "subscription_differs",
    "subscription_missing_locally",
    "subscription_missing_at_stripe",
    "invoice_differs",
)
OPEN_INVOICES: Final[tuple[str, ...]] = ("draft", "open")


def _describe(status: str, price: str, cancel_at_period_end: bool) -> str:
    return f"{status} {price}" + (" (cancels at period end)" if cancel_at_period_end else "")


def compare_subscription(row: Subscription, stripe: SubscriptionSnapshot) -> list[Mismatch]:
    local = (row.status, row.stripe_price_id, row.cancel_at_period_end)
    remote = (stripe.status, stripe.stripe_price_id, stripe.cancel_at_period_end)
    if local == remote:
        return []
    return [
        Mismatch(
            "subscription_differs",
            None,
            None,
            _describe(*local),
            _describe(*remote),
            stripe_object_id=row.id,
        )
    ]


async def _local_rows(
    database: Database, since: datetime
) -> tuple[list[Subscription], list[Invoice], set[str]]:
    async with database.sessions() as session:
        subscriptions = list(
            await session.scalars(
                select(Subscription).where(
                    or_(
                        col(Subscription.status).not_in(TERMINAL),
                        col(Subscription.updated_at) >= since,
                    )
                )
            )
        )
        invoices = list(
            await session.scalars(
                select(Invoice).where(
                    or_(
                        col(Invoice.status).in_(OPEN_INVOICES),
                        col(Invoice.updated_at) >= since,
                    )
                )
            )
        )
        customers = set(
            (
                await session.scalars(
                    select(col(BillingCustomer.stripe_customer_id)).where(
                        col(BillingCustomer.stripe_customer_id).is_not(None)
                    )
                )
            ).all()
        )
    return subscriptions, invoices, {customer for customer in customers if customer}


async def compare_billing(
    database: Database, gateway: StripeGateway, since: datetime
) -> tuple[int, list[Mismatch]]:
    """(subscriptions checked, mismatches) for the mirror against Stripe."""
    subscriptions, invoices, customers = await _local_rows(database, since)
    limit = asyncio.Semaphore(CONCURRENT_STRIPE_CALLS)

    async def check_subscription(row: Subscription) -> list[Mismatch]:
        async with limit:
            try:
                stripe = await gateway.retrieve_subscription(row.id)
            except PaymentProviderError as exc:
                if exc.http_status == 404:
                    return [
                        Mismatch(
                            "subscription_missing_at_stripe",
                            None,
                            None,
                            row.status,
                            None,
                            stripe_object_id=row.id,
                        )
                    ]
                raise ReconciliationError(f"retrieving a subscription failed: {exc}") from exc
        return compare_subscription(row, stripe)

    async def check_invoice(row: Invoice) -> list[Mismatch]:
        async with limit:
            try:
                stripe = await gateway.retrieve_invoice(row.id)
            except PaymentProviderError as exc:
                raise ReconciliationError(f"retrieving an invoice failed: {exc}") from exc
        if stripe.status == row.status:
            return []
        return [Mismatch("invoice_differs", None, None, row.status, stripe.status, row.id)]

    found = await asyncio.gather(
        *(check_subscription(row) for row in subscriptions),
        *(check_invoice(row) for row in invoices),
    )
    mismatches = [mismatch for group in found for mismatch in group]
    known = {row.id for row in subscriptions}
    try:
        async for stripe in gateway.iter_subscriptions():
            if stripe.created_at < since or stripe.id in known:
                continue
            if stripe.customer_id not in customers:
                continue
            async with database.sessions() as session:
                if await session.get(Subscription, stripe.id) is not None:
                    continue
            mismatches.append(
                Mismatch(
                    "subscription_missing_locally",
                    None,
                    None,
                    None,
                    stripe.status,
                    stripe_object_id=stripe.id,
                )
            )
    except PaymentProviderError as exc:
        raise ReconciliationError(f"listing subscriptions failed: {exc}") from exc
    return len(subscriptions), mismatches
