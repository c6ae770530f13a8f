"""What a reconciliation reports, shared by its payment and billing parts."""

from __future__ import annotations

from dataclasses import dataclass

CONCURRENT_STRIPE_CALLS = 8


class ReconciliationError(RuntimeError):
    """Reconciliation cannot start (payments not configured) or Stripe failed."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str
    payment_id: str | None
    payment_intent_id: str | None
    local: str | None
    stripe: str | None
    # A subscription or invoice id, for billing mismatches (flows.reconcile_payments.billing).
    stripe_object_id: str | None = None
