"""What a payment event changes: conditional UPDATEs of the payment it refers to.

They are the rule of `state_machine.decide`, in SQL. The WHERE clause is the compare-and-set:
PostgreSQL re-checks it on the latest row version when a concurrent transaction updated the
row first, and SQLite runs one writer at a time, so two deliveries can never both apply a
transition, and no lock is held between reads.

Each statement is built once per shape (which ids the event names, which it records, whether
it carries a refunded amount) with bound parameters, then reused: building and compiling a
fresh statement per event cost more than running it. They are built on the table, not the ORM
entity: no ORM objects are loaded here, and the ORM's bulk-UPDATE machinery is not free either.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BindParameter, Column, Table, Update, and_, bindparam, func, literal, or_
from sqlalchemy import update as sql_update

from api.payments.models import Payment
from api.payments.state_machine import Change, PaymentStatus, sources_of
from api.payments.webhook_signature import StripeEventPayload

PAYMENT_INTENT_STATUSES: Final[dict[str, PaymentStatus]] = {
    "payment_intent.processing": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
}
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"

PAYMENTS: Final[Table] = Payment.__table__  # type: ignore[attr-defined]


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


@dataclass(frozen=True, slots=True)
class Shape:
    """What decides the SQL of a change (its parameters aside): few distinct values, so the
    statements are built once each."""

    status: PaymentStatus
    carries_refund: bool
    by_intent: bool
    by_payment_id: bool
    by_charge: bool
    records_intent: bool
    records_charge: bool

    def transition(self) -> Update:
        """The move from another status."""
        return _update_statement(self, growth=False)

    def growth(self) -> Update | None:
        """The one self-transition: a further partial refund, news only if the amount grew."""
        if self.status not in sources_of(self.status) or not self.carries_refund:
            return None
        return _update_statement(self, growth=True)


@dataclass(frozen=True, slots=True)
class PaymentChange:
    """A change to the payment an event refers to: the one bound to `intent_id`, or the one
    with `payment_id` and no PaymentIntent yet (metadata.payment_id links a PaymentIntent
    whose create answer the event overtook; never a payment bound to another intent), or
    the one with `charge_id` when `by_charge`. The intent and charge ids are recorded on the
    payment where it has none yet, when `records_intent` and whenever a charge is known."""

    change: Change
    intent_id: str | None = None
    payment_id: uuid.UUID | None = None
    charge_id: str | None = None
    by_charge: bool = False
    records_intent: bool = False

    def names_a_payment(self) -> bool:
        shape = self.shape
        return shape.by_intent or shape.by_payment_id or shape.by_charge

    def parameters(self, now: datetime) -> dict[str, Any]:
        return {
            "new_status": self.change.status,
            "event_created": self.change.event_created_at,
            "now": now,
            "refunded": self.change.amount_refunded,
            "intent": self.intent_id,
            "payment": self.payment_id,
            "charge": self.charge_id,
        }

    @property
    def shape(self) -> Shape:
        return Shape(
            status=self.change.status,
            carries_refund=self.change.amount_refunded is not None,
            by_intent=self.intent_id is not None,
            by_payment_id=self.payment_id is not None,
            by_charge=self.by_charge and self.charge_id is not None,
            records_intent=self.records_intent and self.intent_id is not None,
            records_charge=self.charge_id is not None,
        )


def _param(name: str, column: Column[Any]) -> BindParameter[Any]:
    # Named unlike any column: UPDATE reserves the column names for its own SET parameters.
    return bindparam(name, type_=column.type)


@functools.cache
def _update_statement(shape: Shape, *, growth: bool) -> Update:
    table = PAYMENTS.c
    intent = _param("intent", table.stripe_payment_intent_id)
    charge = _param("charge", table.stripe_charge_id)
    event_created = _param("event_created", table.status_event_created_at)
    refunded = _param("refunded", table.amount_refunded)
    refers_to = []
    if shape.by_intent:
        refers_to.append(table.stripe_payment_intent_id == intent)
    if shape.by_payment_id:
        unbound = table.stripe_payment_intent_id.is_(None)
        refers_to.append(and_(table.id == _param("payment", table.id), unbound))
    if shape.by_charge:
        refers_to.append(table.stripe_charge_id == charge)
    values: dict[str, Any] = {
        "status": _param("new_status", table.status),
        "status_event_created_at": event_created,
        "updated_at": _param("now", table.updated_at),
    }
    if shape.carries_refund:
        values["amount_refunded"] = refunded
    if shape.records_intent:
        values["stripe_payment_intent_id"] = func.coalesce(table.stripe_payment_intent_id, intent)
    if shape.records_charge:
        values["stripe_charge_id"] = func.coalesce(table.stripe_charge_id, charge)
    not_older = or_(
        table.status_event_created_at.is_(None), table.status_event_created_at <= event_created
    )
    if growth:
        condition = and_(table.status == shape.status, table.amount_refunded < refunded)
    else:
        others = sorted(sources_of(shape.status) - {shape.status})
        # Constants of the shape, each its own literal: an IN list of one bound parameter
        # would be expanded again at every execution.
        condition = table.status.in_([literal(status) for status in others])
    return (
        sql_update(PAYMENTS)
        .where(or_(*refers_to), not_older, condition)
        .values(values)
        .returning(table.id)
    )


def _payment_intent_change(event: StripeEventPayload, target: PaymentStatus) -> PaymentChange:
    intent = _PaymentIntentObject.model_validate(event.object)
    return PaymentChange(
        Change(target, event.created_at),
        intent_id=intent.id or None,
        payment_id=_uuid_or_none(intent.metadata.get("payment_id")),
        charge_id=(_id(intent.latest_charge) or None) if target == "succeeded" else None,
        records_intent=True,
    )


def _charge_refunded_change(event: StripeEventPayload) -> PaymentChange | None:
    charge = _ChargeObject.model_validate(event.object)
    if charge.amount_refunded <= 0:
        return None
    target: PaymentStatus = (
        "refunded" if charge.amount_refunded >= charge.amount else "partially_refunded"
    )
    change = Change(target, event.created_at, amount_refunded=charge.amount_refunded)
    intent_id = _id(charge.payment_intent) or None
    return PaymentChange(change, intent_id=intent_id, charge_id=charge.id or None, by_charge=True)


def _dispute_created_change(event: StripeEventPayload) -> PaymentChange | None:
    dispute = _DisputeObject.model_validate(event.object)
    intent_id = _id(dispute.payment_intent) or None
    charge_id = _id(dispute.charge) or None
    change = Change("disputed", event.created_at)
    return PaymentChange(change, intent_id=intent_id, charge_id=charge_id, by_charge=True)


def payment_change(event: StripeEventPayload) -> PaymentChange | None:
    """What a payment event changes; None when it changes nothing (stored and acknowledged).
    Raises ValidationError for an event object that is not the expected shape."""
    found: PaymentChange | None = None
    if event.type in PAYMENT_INTENT_STATUSES:
        found = _payment_intent_change(event, PAYMENT_INTENT_STATUSES[event.type])
    elif event.type == CHARGE_REFUNDED:
        found = _charge_refunded_change(event)
    elif event.type == DISPUTE_CREATED:
        found = _dispute_created_change(event)
    return found if found is not None and found.names_a_payment() else None
