"""Payments: creation behind an Idempotency-Key, pages of a user's payments, refunds.

Creating a payment takes three short transactions around one Stripe call, never holding a
database transaction open while Stripe answers:

1. claim: insert the payment (no PaymentIntent yet) and the key record, locked, together. A
   concurrent request with the same key loses on the unique (user, key) constraint and waits
   for the stored response instead;
2. create the PaymentIntent with a Stripe idempotency key derived from the payment id, so a
   retry after a crash or a lost answer finds the same PaymentIntent rather than a second one;
3. store the PaymentIntent id and the response, release the lock.

A request that finds a lock older than the lease takes the payment over and repeats step 2.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.auth.models import as_utc, utc_now
from api.errors import ProblemError
from api.observability.metrics import payments_created_total
from api.payments.models import IDEMPOTENCY_KEY_MAX_LENGTH, IdempotencyKey, Payment
from api.payments.prices import MAX_PAYMENT_AMOUNT, PriceCatalog
from api.payments.schemas import PaymentCreate, PaymentOut, PaymentPage, RefundAccepted
from api.payments.state_machine import INITIAL_STATUS, REFUNDABLE
from api.payments.stripe_gateway import PaymentProviderError, StripeGateway

logger = logging.getLogger("api.payments")

# How long a request may hold a key before another request with it takes the payment over.
LOCK_LEASE = timedelta(seconds=30)
# How long a request with a key in use waits for the first one's response.
WAIT_FOR_RESPONSE_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def validate_idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise ProblemError(
            400, "the Idempotency-Key header is required", slug="idempotency-key-required"
        )
    if len(value) > IDEMPOTENCY_KEY_MAX_LENGTH or not value.isprintable() or not value.isascii():
        raise ProblemError(
            400,
            f"the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable "
            "ASCII characters",
            slug="invalid-idempotency-key",
        )
    return value


def request_fingerprint(body: PaymentCreate) -> str:
    """SHA-256 of the canonical request: the same body always hashes the same."""
    canonical = json.dumps(
        {"route": "POST /v1/payments", **body.model_dump()}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def stripe_payment_idempotency_key(payment_id: uuid.UUID) -> str:
    # One payment id per (user, Idempotency-Key), so this is derived from the client's key
    # without sending the client's own string to Stripe.
    return f"slipway-payment-{payment_id}"


@dataclass(frozen=True, slots=True)
class _Lead:
    key_id: uuid.UUID
    payment_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class _Replay:
    status_code: int
    body: dict[str, Any]


class _Wait:
    pass


async def _existing_key(
    session: AsyncSession, user_id: uuid.UUID, key: str
) -> IdempotencyKey | None:
    record: IdempotencyKey | None = await session.scalar(
        select(IdempotencyKey).where(
            col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key) == key
        )
    )
    return record


async def _claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    body: PaymentCreate,
    amount: int,
    currency: str,
) -> _Lead | _Replay | _Wait:
    """Lead, replay or wait. A key already on record is only read: a request waiting for
    another to finish polls with SELECTs, never with inserts that roll back (dead rows)."""
    now = utc_now()
    async with sessions() as session:
        existing = await _existing_key(session, user_id, key)
        if existing is None:
            payment = Payment(
                user_id=user_id,
                price_id=body.price_id,
                quantity=body.quantity,
                amount=amount,
                currency=currency,
                status=INITIAL_STATUS,
            )
            record = IdempotencyKey(
                user_id=user_id,
                key=key,
                request_hash=fingerprint,
                payment_id=payment.id,
                locked_at=now,
            )
            try:
                session.add(payment)
                await session.flush()  # the key row references the payment
                session.add(record)
                await session.commit()
                return _Lead(key_id=record.id, payment_id=payment.id)
            except IntegrityError:
                await session.rollback()  # a concurrent request claimed the key first
            existing = await _existing_key(session, user_id, key)
            if existing is None:
                return _Wait()
        if existing.request_hash != fingerprint:
            raise ProblemError(
                422,
                "this Idempotency-Key was already used with a different request body",
                slug="idempotency-key-reused",
            )
        if existing.response_status is not None and existing.response_body is not None:
            return _Replay(existing.response_status, json.loads(existing.response_body))
        locked_at = existing.locked_at
        if locked_at is not None and as_utc(locked_at) > now - LOCK_LEASE:
            return _Wait()
        # The first request died or gave up: take over with a compare-and-set on the lock.
        taken = await session.execute(
            update(IdempotencyKey)
            .where(
                col(IdempotencyKey.id) == existing.id,
                col(IdempotencyKey.response_status).is_(None),
                col(IdempotencyKey.locked_at).is_(None)
                if locked_at is None
                else col(IdempotencyKey.locked_at) == locked_at,
            )
            .values(locked_at=now)
        )
        await session.commit()
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return _Lead(key_id=existing.id, payment_id=existing.payment_id)
        return _Wait()


async def _release(sessions: async_sessionmaker[AsyncSession], key_id: uuid.UUID) -> None:
    """Let the next request with this key try again (with the same payment and Stripe key)."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(IdempotencyKey).where(col(IdempotencyKey.id) == key_id).values(locked_at=None)
        )


async def _create_intent_and_respond(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, lead: _Lead
) -> StoredResponse:
    async with sessions() as session:
        payment = await session.get(Payment, lead.payment_id)
    assert payment is not None  # the key row references it (FK, ON DELETE CASCADE)
    try:
        intent = await gateway.create_payment_intent(
            amount=payment.amount,
            currency=payment.currency,
            metadata={"payment_id": str(payment.id)},
            idempotency_key=stripe_payment_idempotency_key(payment.id),
        )
    except PaymentProviderError as exc:
        logger.warning(
            "creating a PaymentIntent failed",
            extra={"payment_id": str(payment.id), "code": exc.code, "status": exc.http_status},
        )
        await _release(sessions, lead.key_id)
        raise ProblemError(
            502,
            "the payment provider did not accept the request; retry with the same Idempotency-Key",
            slug="payment-provider-error",
        ) from None
    except BaseException:
        await _release(sessions, lead.key_id)
        raise

    async with sessions() as session, session.begin():
        await session.execute(
            update(Payment)
            .where(col(Payment.id) == payment.id)
            .values(
                stripe_payment_intent_id=intent.id,
                client_secret=intent.client_secret,
                updated_at=utc_now(),
            )
        )
        stored = await session.get(Payment, payment.id, populate_existing=True)
        assert stored is not None
        body = PaymentOut.of(stored).model_dump(mode="json")
        await session.execute(
            update(IdempotencyKey)
            .where(col(IdempotencyKey.id) == lead.key_id)
            .values(response_status=201, response_body=json.dumps(body), locked_at=None)
        )
    payments_created_total.labels(currency=payment.currency).inc()
    return StoredResponse(201, body, replayed=False)


async def create_payment(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user_id: uuid.UUID,
    idempotency_key: str,
    body: PaymentCreate,
) -> StoredResponse:
    price = catalog.get(body.price_id)
    if price is None:
        raise ProblemError(422, f"there is no price {body.price_id!r}", slug="unknown-price")
    if price.is_recurring:
        raise ProblemError(
            422,
            f"{price.id!r} is a recurring price: subscribe with POST /v1/billing/subscriptions "
            "or POST /v1/billing/checkout",
            slug="recurring-price",
        )
    amount = price.unit_amount * body.quantity
    if amount > MAX_PAYMENT_AMOUNT:
        raise ProblemError(422, "the total amount is too large", slug="amount-too-large")
    fingerprint = request_fingerprint(body)
    deadline = time.monotonic() + WAIT_FOR_RESPONSE_SECONDS
    while True:
        claim = await _claim(
            sessions,
            user_id=user_id,
            key=idempotency_key,
            fingerprint=fingerprint,
            body=body,
            amount=amount,
            currency=price.currency,
        )
        if isinstance(claim, _Lead):
            return await _create_intent_and_respond(sessions, gateway, claim)
        if isinstance(claim, _Replay):
            return StoredResponse(claim.status_code, claim.body, replayed=True)
        if time.monotonic() > deadline:
            raise ProblemError(
                409,
                "a request with this Idempotency-Key is still being processed; retry later",
                slug="idempotency-key-in-use",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


def _encode_cursor(payment: Payment) -> str:
    raw = f"{as_utc(payment.created_at).isoformat()}|{payment.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, identifier = base64.urlsafe_b64decode(padded).decode().split("|")
        return as_utc(datetime.fromisoformat(created)), uuid.UUID(identifier)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(422, "the cursor is not valid", slug="invalid-cursor") from None


async def list_payments(
    session: AsyncSession, *, user_id: uuid.UUID, limit: int, cursor: str | None
) -> PaymentPage:
    statement = select(Payment).where(col(Payment.user_id) == user_id)
    if cursor is not None:
        created, identifier = _decode_cursor(cursor)
        statement = statement.where(
            or_(
                col(Payment.created_at) < created,
                and_(col(Payment.created_at) == created, col(Payment.id) < identifier),
            )
        )
    statement = statement.order_by(col(Payment.created_at).desc(), col(Payment.id).desc())
    rows = list((await session.scalars(statement.limit(limit + 1))).all())
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(rows) > limit else None
    return PaymentPage(items=[PaymentOut.of(payment) for payment in page], next_cursor=next_cursor)


async def get_payment(
    session: AsyncSession, *, user_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentOut:
    payment = await session.get(Payment, payment_id)
    # Someone else's payment is indistinguishable from a missing one.
    if payment is None or payment.user_id != user_id:
        raise ProblemError(404, "there is no such payment")
    return PaymentOut.of(payment)


def stripe_refund_idempotency_key(payment_id: uuid.UUID, client_key: str | None) -> str:
    if client_key is None:
        return f"slipway-refund-{uuid.uuid4()}"  # still one key for all of this call's retries
    digest = hashlib.sha256(client_key.encode()).hexdigest()[:32]
    return f"slipway-refund-{payment_id}-{digest}"


async def refund_payment(
    session: AsyncSession,
    gateway: StripeGateway,
    *,
    payment_id: uuid.UUID,
    amount: int | None,
    idempotency_key: str | None,
) -> RefundAccepted:
    """Ask Stripe for a refund; the payment's status follows from Stripe's charge events."""
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise ProblemError(404, "there is no such payment")
    if payment.status not in REFUNDABLE or payment.stripe_payment_intent_id is None:
        raise ProblemError(
            409,
            f"a payment in status {payment.status!r} cannot be refunded",
            slug="payment-not-refundable",
        )
    remaining = payment.amount - payment.amount_refunded
    # Always explicit: "the rest" is what this service knows is left, not the charge amount.
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise ProblemError(
            422,
            f"the refund exceeds what is left to refund ({remaining})",
            slug="refund-too-large",
        )
    try:
        refund = await gateway.create_refund(
            payment_intent_id=payment.stripe_payment_intent_id,
            amount=amount,
            idempotency_key=stripe_refund_idempotency_key(payment.id, idempotency_key),
        )
    except PaymentProviderError as exc:
        logger.warning(
            "creating a refund failed",
            extra={"payment_id": str(payment.id), "code": exc.code, "status": exc.http_status},
        )
        if exc.retryable:
            raise ProblemError(
                502, "the payment provider is unavailable", slug="payment-provider-error"
            ) from None
        raise ProblemError(
            409, "the payment provider refused the refund", slug="refund-refused"
        ) from None
    return RefundAccepted(
        refund_id=refund.id, payment_id=payment.id, amount=refund.amount, status=refund.status
    )
