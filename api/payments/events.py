"""Applying verified Stripe events: stored once, applied atomically with storing, order-safe.

A delivery inserts its event row (unique Stripe event id) and applies the event in one
transaction. Concurrent deliveries of one event queue behind that insert and find the row
already processed: a duplicate, acknowledged without effect. A failure rolls everything back
and then records the event with its error (a class and a redacted message), unprocessed, so
Stripe's redelivery tries again. When the database itself is unavailable nothing can be
recorded: the error reaches the route, which answers 503, and Stripe redelivers.

On PostgreSQL a payment event that changes at most one row is stored and applied by a single
statement, in one round trip: see `_record_and_apply_at_once`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import ValidationError
from sqlalchemy import Insert, Select, Table, bindparam, false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import utc_now
from api.billing.events import BILLING_EVENT_TYPES, BillingOutcome, apply_billing_event
from api.db import Database
from api.errors import describe_database_error, is_database_unavailable
from api.payments.models import StripeEvent
from api.payments.payment_changes import (
    CHARGE_REFUNDED,
    DISPUTE_CREATED,
    PAYMENT_INTENT_STATUSES,
    PaymentChange,
    Shape,
    payment_change,
)
from api.payments.prices import PriceCatalog
from api.payments.state_machine import PaymentStatus
from api.payments.webhook_signature import StripeEventPayload

logger = logging.getLogger("api.payments.events")

EventResult = Literal["processed", "duplicate", "ignored", "failed"]
ERROR_MAX_LENGTH = 2000

HANDLED_TYPES: Final[frozenset[str]] = frozenset(
    {*PAYMENT_INTENT_STATUSES, CHARGE_REFUNDED, DISPUTE_CREATED, *BILLING_EVENT_TYPES}
)
EVENTS: Final[Table] = StripeEvent.__table__  # type: ignore[attr-defined]


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


def _insert(dialect_name: str) -> Any:
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


@functools.cache
def _insert_processed(dialect_name: str) -> Insert:
    """INSERT the event row as processed, unless it exists; RETURNING its id when inserted.

    The row becomes visible only if what applies the event commits with it, which saves a
    round trip per event. ON CONFLICT DO NOTHING waits for a concurrent insert of the same id.
    RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    """
    received = bindparam("now", type_=EVENTS.c.received_at.type)
    statement: Insert = (
        _insert(dialect_name)(EVENTS)
        .values(
            id=bindparam("event_id", type_=EVENTS.c.id.type),
            type=bindparam("event_type", type_=EVENTS.c.type.type),
            payload=bindparam("event_payload", type_=EVENTS.c.payload.type),
            event_created_at=bindparam("event_created", type_=EVENTS.c.event_created_at.type),
            received_at=received,
            processed_at=received,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(EVENTS.c.id)
    )
    return statement


def _event_parameters(event: StripeEventPayload, now: Any) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.type,
        "event_payload": event.raw,
        "event_created": event.created_at,
        "now": now,
    }


async def _store_event(session: AsyncSession, event: StripeEventPayload) -> bool:
    """Insert the event row; False when it already exists (waits for a concurrent insert)."""
    statement = _insert_processed(session.get_bind().dialect.name)
    parameters = _event_parameters(event, utc_now())
    return (await session.execute(statement, parameters)).first() is not None


async def _already_processed(session: AsyncSession, event_id: str) -> bool:
    """True for a duplicate. An unprocessed row (an earlier attempt failed) is locked, so that
    concurrent redeliveries retry it one at a time; a processed one is only read: Stripe's
    retry storms of one event must not queue behind a row lock."""
    processed = select(EVENTS.c.processed_at).where(EVENTS.c.id == event_id)
    if (await session.execute(processed)).scalar_one_or_none() is not None:
        return True
    locked = processed.with_for_update()
    return (await session.execute(locked)).scalar_one_or_none() is not None


async def _apply_payment_change(session: AsyncSession, change: PaymentChange, now: Any) -> Outcome:
    parameters = change.parameters(now)
    if (await session.execute(change.shape.transition(), parameters)).first() is not None:
        return Outcome("processed", transition=change.change.status)
    growth = change.shape.growth()
    if growth is not None and (await session.execute(growth, parameters)).first() is not None:
        return Outcome("processed")
    return Outcome("ignored")


async def _record_and_apply_in_transaction(
    database: Database,
    event: StripeEventPayload,
    change: PaymentChange | None,
    catalog: PriceCatalog | None,
) -> Outcome:
    async with database.sessions() as session, session.begin():
        stored = await _store_event(session, event)
        if not stored and await _already_processed(session, event.id):
            return Outcome("duplicate")
        if event.type in BILLING_EVENT_TYPES:
            applied = await apply_billing_event(session, event, catalog)
            result: EventResult = "processed" if applied.outcome == "processed" else "ignored"
            outcome = Outcome(result, billing=applied.outcome)
        elif change is None:
            outcome = Outcome("ignored")  # stored and acknowledged: not ours to act on
        else:
            outcome = await _apply_payment_change(session, change, utc_now())
        if not stored:  # an earlier attempt failed and left its error: this one worked
            await session.execute(
                update(EVENTS)
                .where(EVENTS.c.id == event.id)
                .values(processed_at=utc_now(), error=None)
            )
    return outcome


@functools.cache
def _at_once_statement(shape: Shape | None) -> Select[Any]:
    """Store the event and, only if it was new, apply `change`; and say how the event's row
    stood before. One statement (a data-modifying WITH), so one snapshot: the read sees
    neither this statement's own INSERT nor a row committed after the statement began."""
    stored = _insert_processed("postgresql").cte("stored")
    was_new = select(stored.c.id).exists()
    processed_before = (
        select(EVENTS.c.processed_at)
        .where(EVENTS.c.id == bindparam("event_id", type_=EVENTS.c.id.type))
        .scalar_subquery()
    )
    moved = (
        select(shape.transition().where(was_new).cte("moved").c.id).exists()
        if shape is not None
        else false()
    )
    return select(was_new, processed_before, moved)


async def _record_and_apply_at_once(
    database: Database, event: StripeEventPayload, change: PaymentChange | None
) -> Outcome | None:
    """PostgreSQL: store a payment event and apply it in a single statement, one round trip
    instead of four (BEGIN, INSERT, UPDATE, COMMIT).

    The INSERT and the UPDATE are one statement, atomic on its own in autocommit mode, and the
    UPDATE applies only if the INSERT stored the row: an event is applied once, as in the
    transaction. The statement also reads the event's row as it stood before, so a duplicate
    of an event processed earlier is acknowledged at once.

    None when this cannot decide: the row exists unprocessed (an earlier attempt failed), or
    appeared while the INSERT waited for it (a concurrent delivery). The transaction decides
    those, as it decides every event on SQLite, billing events and partial refunds (which may
    take two UPDATEs).
    """
    now = utc_now()
    parameters = _event_parameters(event, now)
    if change is not None:
        parameters.update(change.parameters(now))
    statement = _at_once_statement(change.shape if change is not None else None)
    async with database.readers() as session:  # autocommit: one statement, atomic alone
        was_new, processed_before, moved = (await session.execute(statement, parameters)).one()
    if was_new:
        if moved:
            assert change is not None
            return Outcome("processed", transition=change.change.status)
        return Outcome("ignored")
    return Outcome("duplicate") if processed_before is not None else None


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], event: StripeEventPayload, error: str
) -> None:
    async with sessions() as session, session.begin():
        statement = _insert(session.get_bind().dialect.name)(EVENTS).values(
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
            where=EVENTS.c.processed_at.is_(None),
        )
        await session.execute(statement)


async def record_and_apply(
    database: Database,
    event: StripeEventPayload,
    catalog: PriceCatalog | None = None,
) -> Outcome:
    """Store `event` once and apply it, atomically. Never raises for a bad event.

    `catalog` interprets Checkout Sessions (which name a catalog price); without it a
    completed subscription Checkout waits for the subscription's own events."""
    try:
        billing = event.type in BILLING_EVENT_TYPES
        change = None if billing else payment_change(event)
        one_update = change is None or change.shape.growth() is None
        if database.is_postgres and not billing and one_update:
            outcome = await _record_and_apply_at_once(database, event, change)
            if outcome is not None:
                return outcome
        return await _record_and_apply_in_transaction(database, event, change, catalog)
    except Exception as exc:  # a malformed object or the database: Stripe retries either way
        if is_database_unavailable(exc):
            raise  # nothing can be recorded either: 503, and Stripe redelivers
        error = _describe_failure(exc)
    logger.warning(
        "stripe event processing failed",
        extra={"event_id": event.id, "event_type": event.type, "error": error},
    )
    await _record_failure(database.sessions, event, error)
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
