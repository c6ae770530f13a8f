"""Writing Stripe's subscriptions and invoices into the local mirror, never backwards.

Each write is one statement: an INSERT ... ON CONFLICT DO UPDATE whose WHERE clause is the
ordering rule, so concurrent deliveries cannot interleave a read and a write. A snapshot
replaces the row when it comes from a newer Stripe event (`created`, Stripe's clock); within the
same second the status that is further along its lifecycle wins; a canceled or expired
subscription never comes back (Stripe cannot revive one either).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.models import utc_now
from api.billing.models import BillingCustomer, Invoice, Subscription
from api.billing.stripe_objects import InvoiceSnapshot, SubscriptionSnapshot
from api.user_cache import mark_user_changed

Written = Literal["processed", "stale"]

# Lifecycle order, for two snapshots of the same second.
SUBSCRIPTION_RANK: Final[dict[str, int]] = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "paused": 2,
    "past_due": 3,
    "unpaid": 4,
    "canceled": 5,
    "incomplete_expired": 5,
}
TERMINAL: Final[tuple[str, ...]] = ("canceled", "incomplete_expired")
INVOICE_RANK: Final[dict[str, int]] = {
    "draft": 0,
    "open": 1,
    "uncollectible": 2,
    "paid": 3,
    "void": 3,
}


def insert_statement(session: AsyncSession) -> Any:
    """INSERT with ON CONFLICT, in the session's dialect."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _rank(column: Any, ranks: dict[str, int]) -> Any:
    return case(ranks, value=column, else_=0)


def _newer(
    stored_at: Any, stored_status: Any, event_at: datetime, status: str, ranks: dict[str, int]
) -> ColumnElement[bool]:
    """The ordering rule as SQL: is a snapshot from `event_at` with `status` news?"""
    return or_(
        stored_at.is_(None),
        stored_at < event_at,
        and_(stored_at == event_at, _rank(stored_status, ranks) <= ranks.get(status, 0)),
    )


async def user_of_customer(session: AsyncSession, customer_id: str) -> uuid.UUID | None:
    return await session.scalar(
        select(col(BillingCustomer.user_id)).where(
            col(BillingCustomer.stripe_customer_id) == customer_id
        )
    )


def _subscription_values(snapshot: SubscriptionSnapshot) -> dict[str, Any]:
    return {
        "stripe_customer_id": snapshot.customer_id,
        "status": snapshot.status,
        "stripe_price_id": snapshot.stripe_price_id,
        "currency": snapshot.currency,
        "unit_amount": snapshot.unit_amount,
        "interval": snapshot.interval,
        "interval_count": snapshot.interval_count,
        "quantity": snapshot.quantity,
        "cancel_at_period_end": snapshot.cancel_at_period_end,
        "current_period_end": snapshot.current_period_end,
        "trial_end": snapshot.trial_end,
        "canceled_at": snapshot.canceled_at,
        "ended_at": snapshot.ended_at,
    }


async def write_subscription(
    session: AsyncSession,
    snapshot: SubscriptionSnapshot,
    *,
    user_id: uuid.UUID,
    observed_at: datetime,
) -> Written:
    """Upsert `snapshot`, as Stripe described it at `observed_at`, unless the row is newer."""
    now = utc_now()
    values = _subscription_values(snapshot)
    past_due = snapshot.status == "past_due"
    table = Subscription.__table__.c  # type: ignore[attr-defined]
    statement = insert_statement(session)(Subscription).values(
        id=snapshot.id,
        user_id=user_id,
        past_due_since=observed_at if past_due else None,
        stripe_created_at=snapshot.created_at,
        status_event_created_at=observed_at,
        created_at=now,
        updated_at=now,
        **values,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            **values,
            # The grace period runs from the first moment it was past due, not the latest.
            "past_due_since": func.coalesce(table.past_due_since, observed_at)
            if past_due
            else None,
            "status_event_created_at": observed_at,
            "updated_at": now,
        },
        where=and_(
            or_(table.status.not_in(TERMINAL), table.status == snapshot.status),
            _newer(
                table.status_event_created_at,
                table.status,
                observed_at,
                snapshot.status,
                SUBSCRIPTION_RANK,
            ),
        ),
    ).returning(table.id)
    written = (await session.execute(statement)).first()
    if written is None:
        return "stale"
    mark_user_changed(session, user_id)
    return "processed"


async def insert_subscription_if_absent(
    session: AsyncSession, values: dict[str, Any], *, user_id: uuid.UUID
) -> Written:
    """A row first known from a Checkout Session: any subscription event may then refine it."""
    now = utc_now()
    statement = (
        insert_statement(session)(Subscription)
        .values(user_id=user_id, created_at=now, updated_at=now, **values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(col(Subscription.id))
    )
    written = (await session.execute(statement)).first()
    if written is None:
        return "stale"
    mark_user_changed(session, user_id)
    return "processed"


async def write_invoice(
    session: AsyncSession,
    snapshot: InvoiceSnapshot,
    *,
    user_id: uuid.UUID,
    observed_at: datetime,
) -> Written:
    now = utc_now()
    values = {
        "subscription_id": snapshot.subscription_id,
        "status": snapshot.status,
        "currency": snapshot.currency,
        "amount_due": snapshot.amount_due,
        "amount_paid": snapshot.amount_paid,
        "hosted_invoice_url": snapshot.hosted_invoice_url,
    }
    table = Invoice.__table__.c  # type: ignore[attr-defined]
    statement = (
        insert_statement(session)(Invoice)
        .values(
            id=snapshot.id,
            user_id=user_id,
            stripe_created_at=snapshot.created_at,
            status_event_created_at=observed_at,
            created_at=now,
            updated_at=now,
            **values,
        )
        .on_conflict_do_update(
            index_elements=["id"],
            set_={**values, "status_event_created_at": observed_at, "updated_at": now},
            where=_newer(
                table.status_event_created_at,
                table.status,
                observed_at,
                snapshot.status,
                INVOICE_RANK,
            ),
        )
        .returning(table.id)
    )
    written = (await session.execute(statement)).first()
    return "processed" if written is not None else "stale"


async def move_subscription(
    session: AsyncSession,
    subscription_id: str,
    *,
    to: Literal["active", "past_due"],
    sources: tuple[str, ...],
    observed_at: datetime,
) -> Written:
    """What an invoice event says about its subscription: paid → active, failed → past_due.

    Stripe also sends customer.subscription.updated for the same change; whichever arrives
    first moves the row, the other finds it already there (or is older and changes nothing).
    """
    table = Subscription.__table__.c  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "status": to,
        "status_event_created_at": observed_at,
        "updated_at": utc_now(),
        "past_due_since": func.coalesce(table.past_due_since, observed_at)
        if to == "past_due"
        else None,
    }
    statement = (
        update(Subscription)
        .where(
            col(Subscription.id) == subscription_id,
            col(Subscription.status).in_(sources),
            or_(
                col(Subscription.status_event_created_at).is_(None),
                col(Subscription.status_event_created_at) <= observed_at,
            ),
        )
        .values(**values)
        .returning(col(Subscription.user_id))
        .execution_options(synchronize_session=False)
    )
    moved = (await session.execute(statement)).first()
    if moved is None:
        return "stale"
    mark_user_changed(session, moved[0])
    return "processed"
