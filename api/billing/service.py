"""Subscriptions: create (Stripe's default_incomplete flow), read, cancel, resume, change plan.

Stripe is the source of truth and the webhook keeps the mirror; each change made here also
writes Stripe's answer into the mirror at once (stamped with Stripe's clock, so a newer event
still wins), so that the caller's next read already sees it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import User, as_utc, utc_now
from api.billing import entitlements, mirror
from api.billing.customers import ensure_customer, provider_error
from api.billing.models import Subscription
from api.billing.schemas import SubscriptionCreated, SubscriptionOut
from api.billing.stripe_objects import SubscriptionSnapshot
from api.errors import ProblemError
from api.payments.prices import Price, PriceCatalog
from api.payments.stripe_gateway import PaymentProviderError, StripeGateway


def recurring_price(catalog: PriceCatalog, price_id: str) -> Price:
    price = catalog.get(price_id)
    if price is None:
        raise ProblemError(422, f"there is no price {price_id!r}", slug="unknown-price")
    if not price.is_recurring:
        raise ProblemError(
            422,
            f"{price_id!r} is a one-time price: buy it with POST /v1/payments or a Checkout",
            slug="one-time-price",
        )
    return price


def stripe_subscription_idempotency_key(user_id: uuid.UUID, client_key: str) -> str:
    # Scoped to the user, and the client's own string never reaches Stripe.
    digest = hashlib.sha256(client_key.encode()).hexdigest()[:32]
    return f"slipway-subscription-{user_id}-{digest}"


def subscription_out(row: Subscription, catalog: PriceCatalog, grace: timedelta) -> SubscriptionOut:
    price = catalog.by_stripe_price(row.stripe_price_id)
    grace_ends = entitlements.grace_ends_at(row, grace)
    return SubscriptionOut(
        id=row.id,
        status=row.status,  # a CHECK constraint keeps it one of the statuses
        price_id=price.id if price else None,
        product=price.product if price else None,
        quantity=row.quantity,
        current_period_end=as_utc(row.current_period_end) if row.current_period_end else None,
        cancel_at_period_end=row.cancel_at_period_end,
        trial_end=as_utc(row.trial_end) if row.trial_end else None,
        canceled_at=as_utc(row.canceled_at) if row.canceled_at else None,
        grace_period_ends_at=grace_ends,
        entitlements=entitlements.granted(row, catalog, grace, utc_now()),
    )


async def _record(
    sessions: async_sessionmaker[AsyncSession], snapshot: SubscriptionSnapshot, user_id: uuid.UUID
) -> None:
    if snapshot.observed_at is None:
        return  # without Stripe's clock the answer cannot be ordered: the webhook will tell
    async with sessions() as session, session.begin():
        await mirror.write_subscription(
            session, snapshot, user_id=user_id, observed_at=snapshot.observed_at
        )


async def create_subscription(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user: User,
    price_id: str,
    idempotency_key: str,
) -> SubscriptionCreated:
    price = recurring_price(catalog, price_id)
    async with sessions() as session:
        current = await entitlements.current_subscription(session, user.id)
    if current is not None and current.status in entitlements.LIVE_STATUSES:
        raise ProblemError(
            409,
            "you already have a subscription: change its plan with "
            "POST /v1/billing/subscription/change",
            slug="already-subscribed",
        )
    customer_id = await ensure_customer(sessions, gateway, user)
    try:
        snapshot = await gateway.create_subscription(
            customer_id=customer_id,
            stripe_price_id=price.stripe_price_id,
            metadata={"user_id": str(user.id), "price_id": price.id},
            idempotency_key=stripe_subscription_idempotency_key(user.id, idempotency_key),
        )
    except PaymentProviderError as exc:
        if exc.code == "idempotency_error":
            raise ProblemError(
                422,
                "this Idempotency-Key was already used with a different request body",
                slug="idempotency-key-reused",
            ) from None
        raise provider_error("creating a subscription", exc) from None
    await _record(sessions, snapshot, user.id)
    return SubscriptionCreated(
        id=snapshot.id, status=snapshot.status, client_secret=snapshot.client_secret
    )


async def _current_or_404(session: AsyncSession, user_id: uuid.UUID) -> Subscription:
    current = await entitlements.current_subscription(session, user_id)
    if current is None:
        raise ProblemError(404, "you have no subscription", slug="no-subscription")
    return current


async def get_subscription(
    session: AsyncSession, catalog: PriceCatalog, *, user: User, grace: timedelta
) -> SubscriptionOut:
    return subscription_out(await _current_or_404(session, user.id), catalog, grace)


async def _live_or_conflict(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, action: str
) -> Subscription:
    async with sessions() as session:
        current = await _current_or_404(session, user_id)
    if current.status not in entitlements.LIVE_STATUSES:
        raise ProblemError(
            409,
            f"a {current.status} subscription cannot be {action}",
            slug="subscription-not-live",
        )
    return current


async def _read_back(
    sessions: async_sessionmaker[AsyncSession],
    catalog: PriceCatalog,
    subscription_id: str,
    grace: timedelta,
) -> SubscriptionOut:
    async with sessions() as session:
        row = await session.get(Subscription, subscription_id)
    assert row is not None  # it was read before the change and rows are never deleted
    return subscription_out(row, catalog, grace)


async def cancel_subscription(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user: User,
    immediately: bool,
    grace: timedelta,
) -> SubscriptionOut:
    if immediately and user.role != "admin":
        raise ProblemError(403, "only administrators may end a subscription before its period ends")
    current = await _live_or_conflict(sessions, user.id, "canceled")
    try:
        if immediately:
            snapshot = await gateway.cancel_subscription(current.id)
        else:
            snapshot = await gateway.update_subscription(current.id, cancel_at_period_end=True)
    except PaymentProviderError as exc:
        raise provider_error("canceling a subscription", exc) from None
    await _record(sessions, snapshot, user.id)
    return await _read_back(sessions, catalog, current.id, grace)


async def resume_subscription(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user: User,
    grace: timedelta,
) -> SubscriptionOut:
    current = await _live_or_conflict(sessions, user.id, "resumed")
    if not current.cancel_at_period_end:
        raise ProblemError(
            409, "the subscription is not set to cancel", slug="subscription-not-canceling"
        )
    try:
        snapshot = await gateway.update_subscription(current.id, cancel_at_period_end=False)
    except PaymentProviderError as exc:
        raise provider_error("resuming a subscription", exc) from None
    await _record(sessions, snapshot, user.id)
    return await _read_back(sessions, catalog, current.id, grace)


async def change_plan(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user: User,
    price_id: str,
    grace: timedelta,
) -> SubscriptionOut:
    price = recurring_price(catalog, price_id)
    current = await _live_or_conflict(sessions, user.id, "changed")
    if current.stripe_price_id == price.stripe_price_id:
        raise ProblemError(409, f"the subscription is already on {price_id!r}", slug="same-plan")
    try:
        # The item id comes from Stripe, not the mirror: the swap must name the live item.
        live = await gateway.retrieve_subscription(current.id)
        snapshot = await gateway.update_subscription(
            current.id, item_id=live.item_id, stripe_price_id=price.stripe_price_id
        )
    except PaymentProviderError as exc:
        raise provider_error("changing a subscription's plan", exc) from None
    await _record(sessions, snapshot, user.id)
    return await _read_back(sessions, catalog, current.id, grace)
