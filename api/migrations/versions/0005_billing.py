"""Billing: each user's Stripe Customer, and the mirror of subscriptions and invoices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUBSCRIPTION_STATUSES = (
    "'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'unpaid', "
    "'canceled', 'paused'"
)
INVOICE_STATUSES = "'draft', 'open', 'paid', 'uncollectible', 'void'"


def _user_id(table: str) -> list[Any]:
    return [
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="RESTRICT"
        ),
    ]


def _timestamps() -> list[Any]:
    return [
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_event_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "billing_customers",
        *_user_id("billing_customers"),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_billing_customers")),
        sa.UniqueConstraint(
            "stripe_customer_id", name=op.f("uq_billing_customers_stripe_customer_id")
        ),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=255), nullable=False),
        *_user_id("invoices"),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("hosted_invoice_url", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(f"status IN ({INVOICE_STATUSES})", name=op.f("ck_invoices_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
    )
    op.create_index(op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"])
    op.create_index(
        "ix_invoices_user_id_stripe_created_at", "invoices", ["user_id", "stripe_created_at"]
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=255), nullable=False),
        *_user_id("subscriptions"),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("past_due_since", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            f"status IN ({SUBSCRIPTION_STATUSES})", name=op.f("ck_subscriptions_status")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_subscriptions_quantity_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        "ix_subscriptions_user_id_stripe_created_at",
        "subscriptions",
        ["user_id", "stripe_created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_user_id_stripe_created_at", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index("ix_invoices_user_id_stripe_created_at", table_name="invoices")
    op.drop_index(op.f("ix_invoices_subscription_id"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("billing_customers")
