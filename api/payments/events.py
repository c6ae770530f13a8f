"""Applying verified Stripe events: stored once, applied in the same transaction, order-safe.

A delivery inserts its event row (unique Stripe event id) and applies the event in one
transaction. Concurrent deliveries of one event queue behind that insert and find the row
already processed: a duplicate, acknowledged without effect. A failure rolls everything back
and then records the event with its error (a class and a redacted message), unprocessed, so
Stripe's redelivery tries again. When the database itself is unavailable nothing can be
recorded: the error reaches the route, which answers 503, and Stripe redelivers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.auth.models import utc_now
from api.billing.events import BILLING_EVENT_TYPES, BillingOutcome, apply_billing_event
from api.errors import describe_database_error, is_database_unavailable
from api.payments.models import Payment, StripeEvent
from api.payments.prices import PriceCatalog
from api.payments.state_machine import Change, PaymentStatus, sources_of
from api.payments.webhook_signature import StripeEventPayload

logger = logging.getLogger("api.payments.events")

EventResult = Literal["processed", "duplicate", "ignored", "failed"]
ERROR_MAX_LENGTH = 2000

PAYMENT_INTENT_STATUSES: Final[dict[str, PaymentStatus]] = {
    "payment_intent.processing": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
}
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
HANDLED_TYPES: Final[frozenset[str]] = frozenset(
    {*PAYMENT_INTENT_STATUSES, CHARGE_REFUNDED, DISPUTE_CREATED, *BILLING_EVENT_TYPES}
)


def metric_type_label(event_type: str) -> str:
    """Event types come from outside: only the handled ones become label values."""
    return event_type if event_type in HANDLED_TYPES else "other"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: EventResult
    # The status a payment moved to, when it moved (for the transitions metric).
    transition: PaymentStatus | None = None
    # What a billing event did to the subscription mirror (billing_webhook_events_total).
    billing: BillingOutcome | None = None


class _Reference(BaseModel):
    """An expanded Stripe object: only its id matters here."""

    model_config = ConfigDict(extra="ignore")

    id: str


class _PaymentIntentObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    metadata: dict[str, str] = {}
    latest_charge: str | _Reference | None = None


class _ChargeObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    amount: int
    amount_refunded: int
    payment_intent: str | _Reference | None = None


class _DisputeObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    charge: str | _Reference | None = None
    payment_intent: str | _Reference | None = None


def _id(reference: str | _Reference | None) -> str | None:
    return reference.id if isinstance(reference, _Reference) else reference


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _refers_to(
    *,
    payment_intent_id: str | None = None,
    payment_id: uuid.UUID | None = None,
    charge_id: str | None = None,
) -> ColumnElement[bool] | None:
    """Which payment an event is about, as a WHERE clause (None: it names none of ours)."""
    conditions: list[ColumnElement[bool]] = []
    if payment_intent_id:
        conditions.append(col(Payment.stripe_payment_intent_id) == payment_intent_id)
    if payment_id is not None:
        # metadata.payment_id links a PaymentIntent whose id is not stored yet (its event
        # overtook the answer to the create call); never a payment bound to another intent.
        conditions.append(
            and_(col(Payment.id) == payment_id, col(Payment.stripe_payment_intent_id).is_(None))
        )
    if charge_id:
        conditions.append(col(Payment.stripe_charge_id) == charge_id)
    return or_(*conditions) if conditions else None


async def _update_if(
    session: AsyncSession, condition: ColumnElement[bool], values: dict[str, Any]
) -> bool:
    statement = (
        update(Payment)
        .where(condition)
        .values(**values)
        .returning(col(Payment.id))
        # No ORM objects are loaded on this path: skip matching them up after the UPDATE.
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).first() is not None


async def _apply_change(
    session: AsyncSession,
    refers_to: ColumnElement[bool] | None,
    change: Change,
    *,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
) -> Outcome:
    """Apply `change` with one conditional UPDATE: the rule of `state_machine.decide`, in SQL.

    The WHERE clause is the compare-and-set: PostgreSQL re-checks it on the latest row version
    when a concurrent transaction updated the row first, and SQLite runs one writer at a time,
    so two deliveries can never both apply a transition, and no lock is held between reads.
    """
    if refers_to is None:
        return Outcome("ignored")
    values: dict[str, Any] = {
        "status": change.status,
        "status_event_created_at": change.event_created_at,
        "updated_at": utc_now(),
    }
    if change.amount_refunded is not None:
        values["amount_refunded"] = change.amount_refunded
    if payment_intent_id:
        values["stripe_payment_intent_id"] = func.coalesce(
            col(Payment.stripe_payment_intent_id), payment_intent_id
        )
    if charge_id:
        values["stripe_charge_id"] = func.coalesce(col(Payment.stripe_charge_id), charge_id)
    not_older = or_(
        col(Payment.status_event_created_at).is_(None),
        col(Payment.status_event_created_at) <= change.event_created_at,
    )
    other_sources = sources_of(change.status) - {change.status}
    if await _update_if(
        session, and_(refers_to, not_older, col(Payment.status).in_(other_sources)), values
    ):
        return Outcome("processed", transition=change.status)
    if change.status in sources_of(change.status) and change.amount_refunded is not None:
        # The one self-transition: a further partial refund, news only if the amount grew.
        grew = and_(
            refers_to,
            not_older,
            col(Payment.status) == change.status,
            col(Payment.amount_refunded) < change.amount_refunded,
        )
        if await _update_if(session, grew, values):
            return Outcome("processed")
    return Outcome("ignored")


async def _apply_payment_intent_event(
    session: AsyncSession, event: StripeEventPayload, target: PaymentStatus
) -> Outcome:
    intent = _PaymentIntentObject.model_validate(event.object)
    refers_to = _refers_to(
        payment_intent_id=intent.id,
        payment_id=_uuid_or_none(intent.metadata.get("payment_id")),
    )
    return await _apply_change(
        session,
        refers_to,
        Change(target, event.created_at),
        payment_intent_id=intent.id,
        charge_id=_id(intent.latest_charge) if target == "succeeded" else None,
    )


async def _apply_charge_refunded(session: AsyncSession, event: StripeEventPayload) -> Outcome:
    charge = _ChargeObject.model_validate(event.object)
    if charge.amount_refunded <= 0:
        return Outcome("ignored")
    target: PaymentStatus = (
        "refunded" if charge.amount_refunded >= charge.amount else "partially_refunded"
    )
    refers_to = _refers_to(payment_intent_id=_id(charge.payment_intent), charge_id=charge.id)
    change = Change(target, event.created_at, amount_refunded=charge.amount_refunded)
    return await _apply_change(session, refers_to, change, charge_id=charge.id)


async def _apply_dispute_created(session: AsyncSession, event: StripeEventPayload) -> Outcome:
    dispute = _DisputeObject.model_validate(event.object)
    charge_id = _id(dispute.charge)
    refers_to = _refers_to(payment_intent_id=_id(dispute.payment_intent), charge_id=charge_id)
    change = Change("disputed", event.created_at)
    return await _apply_change(session, refers_to, change, charge_id=charge_id)


async def _apply(
    session: AsyncSession, event: StripeEventPayload, catalog: PriceCatalog | None
) -> Outcome:
    if event.type in BILLING_EVENT_TYPES:
        applied = await apply_billing_event(session, event, catalog)
        result: EventResult = "processed" if applied.outcome == "processed" else "ignored"
        return Outcome(result, billing=applied.outcome)
    if event.type in PAYMENT_INTENT_STATUSES:
        return await _apply_payment_intent_event(
            session, event, PAYMENT_INTENT_STATUSES[event.type]
        )
    if event.type == CHARGE_REFUNDED:
        return await _apply_charge_refunded(session, event)
    if event.type == DISPUTE_CREATED:
        return await _apply_dispute_created(session, event)
    return Outcome("ignored")  # stored and acknowledged: other types are not ours to act on


def _insert(session: AsyncSession) -> Callable[..., Any]:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def _store_event(session: AsyncSession, event: StripeEventPayload) -> bool:
    """Insert the event row; False when it already exists (waits for a concurrent insert).

    The row is inserted as processed: it becomes visible only if the transaction that applies
    the event commits, which saves a round trip per event.
    """
    now = utc_now()
    statement = (
        _insert(session)(StripeEvent)
        .values(
            id=event.id,
            type=event.type,
            payload=event.raw,
            event_created_at=event.created_at,
            received_at=now,
            processed_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
        .returning(col(StripeEvent.id))
    )
    inserted = (await session.execute(statement)).scalar_one_or_none()
    return inserted is not None


async def _already_processed(session: AsyncSession, event_id: str) -> bool:
    """True for a duplicate. An unprocessed row (an earlier attempt failed) is locked, so that
    concurrent redeliveries retry it one at a time; a processed one is only read: Stripe's
    retry storms of one event must not queue behind a row lock."""
    processed = select(col(StripeEvent.processed_at)).where(col(StripeEvent.id) == event_id)
    if (await session.execute(processed)).scalar_one_or_none() is not None:
        return True
    locked = processed.with_for_update()
    return (await session.execute(locked)).scalar_one_or_none() is not None


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], event: StripeEventPayload, error: str
) -> None:
    async with sessions() as session, session.begin():
        statement = _insert(session)(StripeEvent).values(
            id=event.id,
            type=event.type,
            payload=event.raw,
            event_created_at=event.created_at,
            received_at=utc_now(),
            error=error,
        )
        # Never mark an event failed that a concurrent delivery has processed meanwhile.
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"error": error},
            where=col(StripeEvent.processed_at).is_(None),
        )
        await session.execute(statement)


async def record_and_apply(
    sessions: async_sessionmaker[AsyncSession],
    event: StripeEventPayload,
    catalog: PriceCatalog | None = None,
) -> Outcome:
    """Store `event` once and apply it, in one transaction. Never raises for a bad event.

    `catalog` interprets Checkout Sessions (which name a catalog price); without it a
    completed subscription Checkout waits for the subscription's own events."""
    try:
        async with sessions() as session, session.begin():
            stored = await _store_event(session, event)
            if not stored and await _already_processed(session, event.id):
                return Outcome("duplicate")
            outcome = await _apply(session, event, catalog)
            if not stored:  # an earlier attempt failed and left its error: this one worked
                await session.execute(
                    update(StripeEvent)
                    .where(col(StripeEvent.id) == event.id)
                    .values(processed_at=utc_now(), error=None)
                )
        return outcome
    except Exception as exc:  # a malformed object or the database: Stripe retries either way
        if is_database_unavailable(exc):
            raise  # nothing can be recorded either: 503, and Stripe redelivers
        error = _describe_failure(exc)
    logger.warning(
        "stripe event processing failed",
        extra={"event_id": event.id, "event_type": event.type, "error": error},
    )
    await _record_failure(sessions, event, error)
    return Outcome("failed")


def _describe_failure(exc: BaseException) -> str:
    """What went wrong, for the stored row and the log: an error class and a redacted message.

    Never the exception's own text: a database error quotes the statement's parameters (the
    event payload) and the server's DETAIL quotes row values; a validation error its input.
    """
    if isinstance(exc, ValidationError):
        # Field locations only: the event object may carry customer details.
        fields = ", ".join(
            ".".join(str(part) for part in error["loc"]) or "object"
            for error in exc.errors(include_input=False, include_url=False)
        )
        return f"the event object is not the expected shape ({fields})"[:ERROR_MAX_LENGTH]
    if isinstance(exc, DBAPIError):
        return f"database error: {describe_database_error(exc)}"
    return f"{type(exc).__name__} (message withheld)"
