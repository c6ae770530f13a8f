"""Stripe's subscription, invoice and Checkout Session objects, read into small typed values.

The webhook reads them from event payloads and the gateway from API answers, so both go
through the same parsers. Stripe moved fields between API versions (the current period from
the subscription to its items, an invoice's subscription under `parent`, the client secret of
the first payment to `confirmation_secret`): each parser reads the current place first and the
older one second, so a webhook endpoint pinned to an older version still parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
]
SUBSCRIPTION_STATUSES: Final[tuple[SubscriptionStatus, ...]] = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
)
InvoiceStatus = Literal["draft", "open", "paid", "uncollectible", "void"]
INVOICE_STATUSES: Final[tuple[InvoiceStatus, ...]] = (
    "draft",
    "open",
    "paid",
    "uncollectible",
    "void",
)


def timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Reference(_Model):
    id: str


def _id(value: str | _Reference | None) -> str | None:
    return value.id if isinstance(value, _Reference) else value


class _Recurring(_Model):
    interval: str
    interval_count: int = 1


class _Price(_Model):
    """A Price (or a legacy Plan, whose amount is `amount` and interval top-level)."""

    id: str
    currency: str
    unit_amount: int | None = None
    amount: int | None = None
    recurring: _Recurring | None = None
    interval: str | None = None
    interval_count: int | None = None


class _SubscriptionItem(_Model):
    id: str
    price: _Price | None = None
    plan: _Price | None = None
    quantity: int = 1
    current_period_end: int | None = None


class _ItemList(_Model):
    data: list[_SubscriptionItem] = Field(min_length=1)


class _ConfirmationSecret(_Model):
    client_secret: str | None = None


class _PaymentIntentSecret(_Model):
    client_secret: str | None = None


class _LatestInvoice(_Model):
    id: str
    confirmation_secret: _ConfirmationSecret | None = None
    payment_intent: str | _PaymentIntentSecret | None = None


class _Subscription(_Model):
    id: str
    customer: str | _Reference
    status: SubscriptionStatus
    created: int
    items: _ItemList
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    trial_end: int | None = None
    current_period_end: int | None = None
    latest_invoice: str | _LatestInvoice | None = None
    metadata: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class SubscriptionSnapshot:
    id: str
    customer_id: str
    status: SubscriptionStatus
    item_id: str
    stripe_price_id: str
    currency: str
    unit_amount: int
    interval: str
    interval_count: int
    quantity: int
    cancel_at_period_end: bool
    current_period_end: datetime | None
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    latest_invoice_id: str | None
    client_secret: str | None
    metadata: dict[str, str]
    # When Stripe answered with this snapshot (its Date header), for API answers.
    observed_at: datetime | None = None


def parse_subscription(data: dict[str, Any]) -> SubscriptionSnapshot:
    """A subscription object (one item: Slipway subscribes to one price at a time)."""
    subscription = _Subscription.model_validate(data)
    item = subscription.items.data[0]
    price = item.price or item.plan
    if price is None:
        raise ValueError("the subscription item names no price")
    interval = price.recurring.interval if price.recurring else price.interval
    interval_count = price.recurring.interval_count if price.recurring else price.interval_count
    latest = subscription.latest_invoice
    client_secret = None
    if isinstance(latest, _LatestInvoice):
        if latest.confirmation_secret is not None:
            client_secret = latest.confirmation_secret.client_secret
        elif isinstance(latest.payment_intent, _PaymentIntentSecret):
            client_secret = latest.payment_intent.client_secret
    return SubscriptionSnapshot(
        id=subscription.id,
        customer_id=_id(subscription.customer) or "",
        status=subscription.status,
        item_id=item.id,
        stripe_price_id=price.id,
        currency=price.currency.lower(),
        unit_amount=price.unit_amount if price.unit_amount is not None else price.amount or 0,
        interval=interval or "month",
        interval_count=interval_count or 1,
        quantity=item.quantity,
        cancel_at_period_end=subscription.cancel_at_period_end,
        current_period_end=timestamp(item.current_period_end or subscription.current_period_end),
        trial_end=timestamp(subscription.trial_end),
        canceled_at=timestamp(subscription.canceled_at),
        ended_at=timestamp(subscription.ended_at),
        created_at=timestamp(subscription.created) or datetime.now(UTC),
        latest_invoice_id=latest.id if isinstance(latest, _LatestInvoice) else latest,
        client_secret=client_secret,
        metadata=subscription.metadata,
    )


class _SubscriptionDetails(_Model):
    subscription: str | _Reference | None = None


class _InvoiceParent(_Model):
    subscription_details: _SubscriptionDetails | None = None


class _Invoice(_Model):
    id: str
    customer: str | _Reference
    status: InvoiceStatus
    created: int
    currency: str
    amount_due: int = 0
    amount_paid: int = 0
    billing_reason: str | None = None
    hosted_invoice_url: str | None = None
    parent: _InvoiceParent | None = None
    subscription: str | _Reference | None = None


@dataclass(frozen=True, slots=True)
class InvoiceSnapshot:
    id: str
    customer_id: str
    subscription_id: str | None
    status: InvoiceStatus
    currency: str
    amount_due: int
    amount_paid: int
    billing_reason: str | None
    hosted_invoice_url: str | None
    created_at: datetime


def parse_invoice(data: dict[str, Any]) -> InvoiceSnapshot:
    invoice = _Invoice.model_validate(data)
    details = invoice.parent.subscription_details if invoice.parent else None
    subscription = _id(details.subscription) if details else None
    return InvoiceSnapshot(
        id=invoice.id,
        customer_id=_id(invoice.customer) or "",
        subscription_id=subscription or _id(invoice.subscription),
        status=invoice.status,
        currency=invoice.currency.lower(),
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        billing_reason=invoice.billing_reason,
        hosted_invoice_url=invoice.hosted_invoice_url,
        created_at=timestamp(invoice.created) or datetime.now(UTC),
    )


class _CheckoutSession(_Model):
    id: str
    mode: Literal["payment", "setup", "subscription"]
    status: str | None = None
    payment_status: str | None = None
    url: str | None = None
    customer: str | _Reference | None = None
    subscription: str | _Reference | None = None
    payment_intent: str | _Reference | None = None
    amount_total: int | None = None
    currency: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class CheckoutSessionSnapshot:
    id: str
    mode: str
    status: str | None
    payment_status: str | None
    url: str | None
    customer_id: str | None
    subscription_id: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None
    client_reference_id: str | None
    metadata: dict[str, str]


def parse_checkout_session(data: dict[str, Any]) -> CheckoutSessionSnapshot:
    session = _CheckoutSession.model_validate(data)
    return CheckoutSessionSnapshot(
        id=session.id,
        mode=session.mode,
        status=session.status,
        payment_status=session.payment_status,
        url=session.url,
        customer_id=_id(session.customer),
        subscription_id=_id(session.subscription),
        payment_intent_id=_id(session.payment_intent),
        amount_total=session.amount_total,
        currency=session.currency.lower() if session.currency else None,
        client_reference_id=session.client_reference_id,
        metadata=session.metadata,
    )
