"""Entitlements: what the user's current subscription grants, read from the mirror.

A subscription that is active or trialing grants its price's entitlements. Past due, it keeps
them for BILLING_GRACE_PERIOD_DAYS from the moment it fell past due (Stripe is retrying the
payment), then loses them. Any other status grants nothing: canceled and unpaid drop them at
once. A subscription set to cancel at the period's end stays active, and entitled, until Stripe
ends it (customer.subscription.deleted).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.dependencies import CurrentUser
from api.auth.models import User, as_utc, utc_now
from api.billing.models import Subscription
from api.db import SessionDep
from api.errors import ProblemError
from api.payments.dependencies import runtime_for
from api.payments.prices import PriceCatalog

ENTITLED: Final[frozenset[str]] = frozenset({"active", "trialing"})
# Which subscription is "the" subscription of a user who has had several: live ones first.
_PREFERENCE: Final[dict[str, int]] = {
    "active": 0,
    "trialing": 0,
    "past_due": 1,
    "unpaid": 2,
    "paused": 2,
    "incomplete": 3,
    "canceled": 4,
    "incomplete_expired": 5,
}
LIVE_STATUSES: Final[tuple[str, ...]] = ("active", "trialing", "past_due", "unpaid", "paused")
RECENT_SUBSCRIPTIONS = 20


async def current_subscription(session: AsyncSession, user_id: uuid.UUID) -> Subscription | None:
    rows = await session.scalars(
        select(Subscription)
        .where(col(Subscription.user_id) == user_id)
        .order_by(col(Subscription.stripe_created_at).desc())
        .limit(RECENT_SUBSCRIPTIONS)
    )
    candidates = list(rows)
    if not candidates:
        return None
    # Stable sort: among equally preferred statuses the newest (first) wins.
    return sorted(candidates, key=lambda row: _PREFERENCE.get(row.status, 9))[0]


def grace_ends_at(subscription: Subscription, grace: timedelta) -> datetime | None:
    if subscription.status != "past_due" or subscription.past_due_since is None:
        return None
    return as_utc(subscription.past_due_since) + grace


def is_entitled(subscription: Subscription, grace: timedelta, now: datetime) -> bool:
    if subscription.status in ENTITLED:
        return True
    ends = grace_ends_at(subscription, grace)
    return ends is not None and now < ends


def granted(
    subscription: Subscription | None, catalog: PriceCatalog, grace: timedelta, now: datetime
) -> list[str]:
    if subscription is None or not is_entitled(subscription, grace, now):
        return []
    price = catalog.by_stripe_price(subscription.stripe_price_id)
    return sorted(price.entitlements) if price is not None else []


def grace_period(request: Request) -> timedelta:
    return timedelta(days=request.app.state.settings.billing_grace_period_days)


async def entitlements_of(request: Request, session: AsyncSession, user: User) -> list[str]:
    """The user's active entitlements (GET /v1/users/me and the guard below)."""
    subscription = await current_subscription(session, user.id)
    catalog = runtime_for(request.app).catalog
    return granted(subscription, catalog, grace_period(request), utc_now())


def require_entitlement(name: str) -> Callable[..., Awaitable[User]]:
    """A dependency: the current user, or 403 naming the entitlement they lack."""

    async def dependency(request: Request, session: SessionDep, user: CurrentUser) -> User:
        if name not in await entitlements_of(request, session, user):
            raise ProblemError(
                403,
                f"this endpoint needs the {name!r} entitlement; subscribe to a plan that grants it",
                slug="entitlement-required",
                extra={"entitlement": name},
            )
        return user

    return dependency
