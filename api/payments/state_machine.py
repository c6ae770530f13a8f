"""Payment statuses and the only transitions between them (docs/api.md).

Stripe does not order its events, so a change is applied only when the transition table
allows it AND the event is not older than the one that set the current status. The decision is
a pure function (the specification); `api.payments.events` applies the same rule in one
conditional UPDATE built from this table, and a test checks the two agree on every pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

PaymentStatus = Literal[
    "requires_payment_method",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "refunded",
    "partially_refunded",
    "disputed",
]
STATUSES: Final[tuple[PaymentStatus, ...]] = (
    "requires_payment_method",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "refunded",
    "partially_refunded",
    "disputed",
)
INITIAL_STATUS: Final[PaymentStatus] = "requires_payment_method"

# from -> the statuses it may move to. Anything not listed is refused, which is what keeps a
# late `processing` from undoing `succeeded`. `failed` may move on because Stripe lets the
# customer retry a declined PaymentIntent. Refunds and disputes imply the payment succeeded, so
# they are reachable from every open status: their event may overtake (or replace a lost)
# `payment_intent.succeeded`. `canceled`, `refunded` and `disputed` are final.
TRANSITIONS: Final[dict[PaymentStatus, frozenset[PaymentStatus]]] = {
    "requires_payment_method": frozenset(
        {
            "processing",
            "succeeded",
            "failed",
            "canceled",
            "partially_refunded",
            "refunded",
            "disputed",
        }
    ),
    "processing": frozenset(
        {"succeeded", "failed", "canceled", "partially_refunded", "refunded", "disputed"}
    ),
    "failed": frozenset(
        {"processing", "succeeded", "canceled", "partially_refunded", "refunded", "disputed"}
    ),
    "succeeded": frozenset({"partially_refunded", "refunded", "disputed"}),
    # A further partial refund keeps the status but raises amount_refunded.
    "partially_refunded": frozenset({"partially_refunded", "refunded", "disputed"}),
    "canceled": frozenset(),
    "refunded": frozenset(),
    "disputed": frozenset(),
}
REFUNDABLE: Final[frozenset[PaymentStatus]] = frozenset({"succeeded", "partially_refunded"})


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """What the decision needs to know about a payment row."""

    status: PaymentStatus
    status_event_created_at: datetime | None
    amount_refunded: int


@dataclass(frozen=True, slots=True)
class Change:
    """A requested change, from one Stripe event."""

    status: PaymentStatus
    event_created_at: datetime
    amount_refunded: int | None = None


def as_status(value: str) -> PaymentStatus:
    """A status read back from the database (a CHECK constraint keeps it one of STATUSES)."""
    if value not in STATUSES:
        raise ValueError(f"unknown payment status {value!r}")
    return value


def is_allowed(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: PaymentStatus) -> frozenset[PaymentStatus]:
    """The statuses from which `target` may be reached (the table read backwards)."""
    return frozenset(status for status in STATUSES if target in TRANSITIONS[status])


def decide(current: PaymentSnapshot, change: Change) -> bool:
    """True when `change` may be applied to a payment in state `current`."""
    if not is_allowed(current.status, change.status):
        return False
    last = current.status_event_created_at
    if last is not None and change.event_created_at < last:
        return False
    if current.status == change.status:
        # Only a self-transition that carries news counts: a larger refunded amount.
        return change.amount_refunded is not None and change.amount_refunded > (
            current.amount_refunded
        )
    return True
