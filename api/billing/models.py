"""Billing tables: the Stripe Customer of each user, and the mirror of Stripe's subscriptions
and invoices that the webhook keeps and entitlements are read from.

The mirror rows are keyed by Stripe's own ids. `status_event_created_at` is the `created` time
of the Stripe event that last set a row: an older event never replaces what a newer one wrote.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api import metadata as _shared_metadata  # noqa: F401
from api.billing.stripe_objects import INVOICE_STATUSES, SUBSCRIPTION_STATUSES
from api.payments.models import STRIPE_ID_MAX_LENGTH, utc_now


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _stripe_id(*, nullable: bool = False, unique: bool = False) -> sa.Column[str]:
    return sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=nullable, unique=unique)


class BillingCustomer(SQLModel, table=True):
    """The one Stripe Customer of a user, created lazily.

    The row is claimed (inserted without a Customer id) before Stripe is called, so that
    concurrent first purchases of one user wait for a single Customer instead of each creating
    one; a claim older than the lease is taken over (the Stripe call is idempotent too).
    """

    __tablename__ = "billing_customers"

    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True
        )
    )
    stripe_customer_id: str | None = Field(
        default=None, sa_column=_stripe_id(nullable=True, unique=True)
    )
    claimed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())


class Subscription(SQLModel, table=True):
    """A Stripe subscription as its latest applied event (or the API) described it."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_in(SUBSCRIPTION_STATUSES)})", name="status"),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.Index("ix_subscriptions_user_id_stripe_created_at", "user_id", "stripe_created_at"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), primary_key=True))
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
        )
    )
    stripe_customer_id: str = Field(sa_column=_stripe_id())
    status: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    stripe_price_id: str = Field(sa_column=_stripe_id())
    currency: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    unit_amount: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    interval: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    interval_count: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    quantity: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    cancel_at_period_end: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    current_period_end: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    trial_end: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    canceled_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # When the subscription fell past_due (the grace period runs from here); null otherwise.
    past_due_since: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    stripe_created_at: datetime = Field(sa_column=_timestamp())
    status_event_created_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())


class Invoice(SQLModel, table=True):
    """A Stripe invoice of a subscription, as its latest applied event described it."""

    __tablename__ = "invoices"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_in(INVOICE_STATUSES)})", name="status"),
        sa.Index("ix_invoices_user_id_stripe_created_at", "user_id", "stripe_created_at"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), primary_key=True))
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
        )
    )
    # No foreign key: an invoice's event may overtake its subscription's first event.
    subscription_id: str | None = Field(
        default=None,
        sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=True, index=True),
    )
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    currency: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    amount_due: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    amount_paid: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    hosted_invoice_url: str | None = Field(
        default=None, sa_column=sa.Column(sa.Text(), nullable=True)
    )
    stripe_created_at: datetime = Field(sa_column=_timestamp())
    status_event_created_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
