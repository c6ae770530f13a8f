"""Payment tables: payments, the Idempotency-Key records of POST /v1/payments, Stripe events.

Column types are explicit SQLAlchemy types so that migration 0003 spells them exactly and the
drift test (autogenerate vs models) stays empty on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The naming convention lives on the shared metadata in api.metadata; importing it first means
# the constraint names below follow it even when this module is the first one imported.
from api import metadata as _shared_metadata  # noqa: F401
from api.payments.state_machine import STATUSES

PRICE_ID_MAX_LENGTH = 64
IDEMPOTENCY_KEY_MAX_LENGTH = 255
STRIPE_ID_MAX_LENGTH = 255

_STATUS_LIST = ", ".join(f"'{status}'" for status in STATUSES)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


class Payment(SQLModel, table=True):
    """One purchase of `quantity` units of a catalog price, mirrored from a Stripe PaymentIntent.

    The row exists before the PaymentIntent does (its id goes into the PaymentIntent's
    metadata and Stripe idempotency key), so the Stripe columns are nullable.
    """

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_STATUS_LIST})", name="status"),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("amount_refunded >= 0", name="amount_refunded_non_negative"),
        # Newest-first pages of one user's payments (keyset pagination).
        sa.Index("ix_payments_user_id_created_at", "user_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    # RESTRICT: a payment is a financial record and outlives nothing silently.
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
        )
    )
    price_id: str = Field(sa_column=sa.Column(sa.String(PRICE_ID_MAX_LENGTH), nullable=False))
    quantity: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    # Smallest currency unit, as Stripe counts it.
    amount: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    currency: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    amount_refunded: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    stripe_payment_intent_id: str | None = Field(
        default=None,
        sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=True, unique=True),
    )
    stripe_charge_id: str | None = Field(
        default=None,
        sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=True, index=True),
    )
    client_secret: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=True)
    )
    # `created` of the Stripe event that set `status`: an event older than this never
    # replaces it (Stripe does not deliver events in order).
    status_event_created_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())


class IdempotencyKey(SQLModel, table=True):
    """A client's Idempotency-Key for POST /v1/payments, with the response it produced.

    `locked_at` is set while one request is creating the payment; concurrent requests with the
    same key wait for `response_body`, and a lock older than the lease is taken over (the
    Stripe call is idempotent too, so taking over never creates a second PaymentIntent).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        )
    )
    key: str = Field(sa_column=sa.Column(sa.String(IDEMPOTENCY_KEY_MAX_LENGTH), nullable=False))
    # SHA-256 of the canonical request body: the same key with another body is refused.
    request_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    payment_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("payments.id", ondelete="CASCADE"), nullable=False
        )
    )
    response_status: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer(), nullable=True)
    )
    response_body: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    locked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())


class StripeEvent(SQLModel, table=True):
    """Every verified Stripe event, stored once under Stripe's event id, with its raw body.

    `processed_at` is set when the event was applied (or deliberately ignored); a failed
    attempt keeps the row with `error` so the redelivery Stripe makes is processed again.
    """

    __tablename__ = "stripe_events"

    id: str = Field(sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), primary_key=True))
    type: str = Field(sa_column=sa.Column(sa.String(STRIPE_ID_MAX_LENGTH), nullable=False))
    payload: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    event_created_at: datetime = Field(sa_column=_timestamp())
    received_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    processed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
