"""billing_subscriptions{status} and billing_mrr{currency}, read from the subscription mirror
each time /metrics is scraped.

Every API instance exports the same values (they come from the shared database), so
dashboards aggregate them with `max`, never `sum`. MRR counts active and past-due subscriptions
(trials have not paid yet): each one's price times quantity, spread over its billing period,
in the currency's smallest unit (cents for usd), as Stripe counts amounts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.billing.models import Subscription
from api.billing.stripe_objects import SUBSCRIPTION_STATUSES
from api.observability.metrics import BILLING_MRR, BILLING_SUBSCRIPTIONS

REVENUE_STATUSES: Final[tuple[str, ...]] = ("active", "past_due")
MONTHS_PER_INTERVAL: Final[dict[str, float]] = {
    "day": 12 / 365,
    "week": 12 / 52,
    "month": 1.0,
    "year": 12.0,
}


@dataclass(frozen=True)
class BillingSnapshot:
    by_status: Mapping[str, int] = field(default_factory=dict)
    mrr: Mapping[str, float] = field(default_factory=dict)


def monthly_amount(unit_amount: int, quantity: int, interval: str, interval_count: int) -> float:
    months = MONTHS_PER_INTERVAL.get(interval, 1.0) * max(interval_count, 1)
    return unit_amount * quantity / months


async def load_billing_snapshot(session: AsyncSession) -> BillingSnapshot:
    counted = await session.execute(
        select(col(Subscription.status), func.count()).group_by(col(Subscription.status))
    )
    by_status = {status: int(count) for status, count in counted.all()}
    plans = await session.execute(
        select(
            col(Subscription.currency),
            col(Subscription.unit_amount),
            col(Subscription.quantity),
            col(Subscription.interval),
            col(Subscription.interval_count),
            func.count(),
        )
        .where(col(Subscription.status).in_(REVENUE_STATUSES))
        .group_by(
            col(Subscription.currency),
            col(Subscription.unit_amount),
            col(Subscription.quantity),
            col(Subscription.interval),
            col(Subscription.interval_count),
        )
    )
    mrr: dict[str, float] = {}
    for currency, unit_amount, quantity, interval, interval_count, count in plans.all():
        amount = monthly_amount(unit_amount, quantity, interval, interval_count) * count
        mrr[currency] = mrr.get(currency, 0.0) + amount
    return BillingSnapshot(by_status, mrr)


class BillingCollector(Collector):
    """Exports one snapshot; `None` (the mirror could not be read): families, no samples."""

    def __init__(self, snapshot: BillingSnapshot | None) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        subscriptions = GaugeMetricFamily(
            BILLING_SUBSCRIPTIONS,
            "Subscriptions in the mirror, by Stripe status.",
            labels=["status"],
        )
        mrr = GaugeMetricFamily(
            BILLING_MRR,
            "Monthly recurring revenue of active and past-due subscriptions, in the "
            "currency's smallest unit.",
            labels=["currency"],
        )
        if self._snapshot is not None:
            # Every status from 0, so that a first past_due is a change, not a new series.
            for status in SUBSCRIPTION_STATUSES:
                subscriptions.add_metric([status], self._snapshot.by_status.get(status, 0))
            for currency, amount in sorted(self._snapshot.mrr.items()):
                mrr.add_metric([currency], round(amount, 2))
        yield subscriptions
        yield mrr


async def collect_billing(session: AsyncSession) -> Collector:
    return BillingCollector(await load_billing_snapshot(session))


def billing_unavailable() -> Collector:
    return BillingCollector(None)
