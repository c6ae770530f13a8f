"""One Stripe Customer per user, created on the first purchase, never twice.

The first request claims the user's billing_customers row (a primary-key insert), creates the
Customer with a Stripe idempotency key derived from the user id, and stores its id. Concurrent
first requests lose the insert and wait for that id. A claim older than the lease (its request
died) is taken over with a compare-and-set; the derived Stripe key makes the retried create
answer the same Customer, so even a takeover does not make a second one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.auth.models import User, as_utc, utc_now
from api.billing.models import BillingCustomer
from api.errors import ProblemError
from api.payments.stripe_gateway import PaymentProviderError, StripeGateway

logger = logging.getLogger("api.billing")

CLAIM_LEASE = timedelta(seconds=30)
WAIT_FOR_CUSTOMER_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05


def stripe_customer_idempotency_key(user_id: uuid.UUID) -> str:
    return f"slipway-customer-{user_id}"


def provider_error(action: str, exc: PaymentProviderError) -> ProblemError:
    """A Stripe failure as the client sees it: 502, retryable; the code is logged, not shown."""
    logger.warning(action + " failed", extra={"code": exc.code, "status": exc.http_status})
    return ProblemError(
        502, "the payment provider did not accept the request; retry", slug="payment-provider-error"
    )


async def customer_id_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(col(BillingCustomer.stripe_customer_id)).where(
            col(BillingCustomer.user_id) == user_id
        )
    )


async def _claim(sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> str | bool:
    """The Customer id when it exists; True when this request must create it; False: wait."""
    now = utc_now()
    async with sessions() as session:
        try:
            session.add(BillingCustomer(user_id=user_id, claimed_at=now))
            await session.commit()
            return True
        except IntegrityError:
            await session.rollback()
        row = await session.get(BillingCustomer, user_id)
        if row is None:
            return False
        if row.stripe_customer_id is not None:
            return row.stripe_customer_id
        if row.claimed_at is not None and as_utc(row.claimed_at) > now - CLAIM_LEASE:
            return False
        claimed_at = row.claimed_at
        taken = await session.execute(
            update(BillingCustomer)
            .where(
                col(BillingCustomer.user_id) == user_id,
                col(BillingCustomer.stripe_customer_id).is_(None),
                col(BillingCustomer.claimed_at).is_(None)
                if claimed_at is None
                else col(BillingCustomer.claimed_at) == claimed_at,
            )
            .values(claimed_at=now)
            .returning(col(BillingCustomer.user_id))
        )
        won = taken.first() is not None
        await session.commit()
        return won


async def _release(sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(BillingCustomer)
            .where(col(BillingCustomer.user_id) == user_id)
            .values(claimed_at=None)
        )


async def _create(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, user: User
) -> str:
    try:
        customer_id = await gateway.create_customer(
            email=user.email,
            metadata={"user_id": str(user.id)},
            idempotency_key=stripe_customer_idempotency_key(user.id),
        )
    except PaymentProviderError as exc:
        await _release(sessions, user.id)
        raise provider_error("creating a Stripe Customer", exc) from None
    except BaseException:
        await _release(sessions, user.id)
        raise
    async with sessions() as session, session.begin():
        await session.execute(
            update(BillingCustomer)
            .where(col(BillingCustomer.user_id) == user.id)
            .values(stripe_customer_id=customer_id, claimed_at=None)
        )
    return customer_id


async def ensure_customer(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, user: User
) -> str:
    """The user's Stripe Customer id, creating the Customer on first use."""
    async with sessions() as session:
        existing = await customer_id_of(session, user.id)
    if existing is not None:
        return existing
    deadline = time.monotonic() + WAIT_FOR_CUSTOMER_SECONDS
    while True:
        claim = await _claim(sessions, user.id)
        if isinstance(claim, str):
            return claim
        if claim:
            return await _create(sessions, gateway, user)
        if time.monotonic() > deadline:
            raise ProblemError(
                409,
                "the billing account is still being set up; retry",
                slug="customer-in-progress",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(POLL_INTERVAL_SECONDS)
