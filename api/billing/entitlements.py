"""Entitlements: what the user's current subscription grants, read from the mirror.

A subscription that is active or trialing grants its price's entitlements. Past due, it keeps
them for BILLING_GRACE_PERIOD_DAYS from the moment it fell past due (Stripe is retrying the
payment), then loses them. Any other status grants nothing: canceled and unpaid drop them at
once. A subscription set to cancel at the period's end stays active, and entitled, until Stripe
ends it (customer.subscription.deleted).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from fastapi import Request
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from api.auth.dependencies import CurrentUser, facet_of
from api.auth.models import User, as_utc, utc_now
from api.billing.models import Subscription
from api.db import Database, DatabaseDep
from api.errors import ProblemError
from api.payments.dependencies import runtime_for
from api.payments.prices import PriceCatalog
from api.user_cache import UserFacet

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
# The facet of the user cache (api.user_cache.UserFacet) that holds the current subscription.
FACET = "subscription"
FACET_FIELDS: Final[tuple[str, ...]] = ("status", "stripe_price_id", "past_due_since")


class SubscriptionState(Protocol):
    """What entitlements depend on: a mirror row, or the cached facet of one."""

    @property
    def status(self) -> str: ...
    @property
    def stripe_price_id(self) -> str: ...
    @property
    def past_due_since(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class CachedSubscription:
    status: str
    stripe_price_id: str
    past_due_since: datetime | None


def _current_first(user_id: Any) -> Any:
    """A user's subscriptions, "the" current one first: live statuses before ended ones,
    the newest first among equally live ones."""
    preference = case(_PREFERENCE, value=col(Subscription.status), else_=9)
    return (
        select(Subscription)
        .where(col(Subscription.user_id) == user_id)
        .order_by(preference, col(Subscription.stripe_created_at).desc())
        .limit(1)
    )


async def current_subscription(session: AsyncSession, user_id: uuid.UUID) -> Subscription | None:
    subscription: Subscription | None = await session.scalar(_current_first(user_id))
    return subscription


def _facet_source(user_id: Any) -> tuple[Any, Any, Sequence[Any]]:
    """The current subscription, outer-joined on its id: one correlated subquery picks it."""
    current = aliased(Subscription)
    current_id = _current_first(user_id).with_only_columns(col(Subscription.id)).scalar_subquery()
    columns = [getattr(current, name) for name in FACET_FIELDS]
    return current, current.id == current_id, columns


SUBSCRIPTION_FACET = UserFacet(name=FACET, fields=FACET_FIELDS, source=_facet_source)


def _from_facet(entry: dict[str, Any]) -> CachedSubscription | None:
    if entry["status"] is None:
        return None
    since = entry["past_due_since"]
    return CachedSubscription(
        status=entry["status"],
        stripe_price_id=entry["stripe_price_id"],
        past_due_since=datetime.fromisoformat(since) if since is not None else None,
    )


def grace_ends_at(subscription: SubscriptionState, grace: timedelta) -> datetime | None:
    if subscription.status != "past_due" or subscription.past_due_since is None:
        return None
    return as_utc(subscription.past_due_since) + grace


def is_entitled(subscription: SubscriptionState, grace: timedelta, now: datetime) -> bool:
    if subscription.status in ENTITLED:
        return True
    ends = grace_ends_at(subscription, grace)
    return ends is not None and now < ends


def granted(
    subscription: SubscriptionState | None, catalog: PriceCatalog, grace: timedelta, now: datetime
) -> list[str]:
    if subscription is None or not is_entitled(subscription, grace, now):
        return []
    price = catalog.by_stripe_price(subscription.stripe_price_id)
    return sorted(price.entitlements) if price is not None else []


def grace_period(request: Request) -> timedelta:
    return timedelta(days=request.app.state.settings.billing_grace_period_days)


async def entitlements_of(request: Request, database: Database, user: User) -> list[str]:
    """The user's active entitlements (GET /v1/users/me and the guard below): from the facet
    authentication read with the user, else from the mirror."""
    facet = facet_of(request, FACET)
    subscription: SubscriptionState | None
    if facet is not None:
        subscription = _from_facet(facet)
    else:
        async with database.readers() as reader:
            subscription = await current_subscription(reader, user.id)
    catalog = runtime_for(request.app).catalog
    return granted(subscription, catalog, grace_period(request), utc_now())


def require_entitlement(name: str) -> Callable[..., Awaitable[User]]:
    """A dependency: the current user, or 403 naming the entitlement they lack."""

    async def dependency(request: Request, database: DatabaseDep, user: CurrentUser) -> User:
        if name not in await entitlements_of(request, database, user):
            raise ProblemError(
                403,
                f"this endpoint needs the {name!r} entitlement; subscribe to a plan that grants it",
                slug="entitlement-required",
                extra={"entitlement": name},
            )
        return user

    return dependency
