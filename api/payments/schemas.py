"""Request and response bodies of the payment endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.auth.models import as_utc
from api.payments.models import Payment
from api.payments.prices import Interval, Price, PriceId, PriceType
from api.payments.state_machine import PaymentStatus, as_status

MAX_QUANTITY = 1000
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class PriceOut(BaseModel):
    id: str
    product: str
    unit_amount: int
    currency: str
    type: PriceType
    interval: Interval | None = Field(description="billing period of a recurring price")
    interval_count: int | None = Field(description="periods between bills (recurring only)")
    entitlements: list[str] = Field(description="what an active subscription to it grants")

    @classmethod
    def of(cls, price: Price) -> PriceOut:
        return cls(
            id=price.id,
            product=price.product,
            unit_amount=price.unit_amount,
            currency=price.currency,
            type=price.type,
            interval=price.interval,
            interval_count=(price.interval_count or 1) if price.is_recurring else None,
            entitlements=list(price.entitlements),
        )


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_id: PriceId
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)


class PaymentOut(BaseModel):
    id: uuid.UUID
    status: PaymentStatus
    amount: int
    currency: str
    price_id: str
    quantity: int
    client_secret: str | None
    stripe_payment_intent_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            status=as_status(payment.status),
            amount=payment.amount,
            currency=payment.currency,
            price_id=payment.price_id,
            quantity=payment.quantity,
            client_secret=payment.client_secret,
            stripe_payment_intent_id=payment.stripe_payment_intent_id,
            created_at=as_utc(payment.created_at),
            updated_at=as_utc(payment.updated_at),
        )


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Omitted: whatever has not been refunded yet.
    amount: int | None = Field(default=None, gt=0)


class RefundAccepted(BaseModel):
    refund_id: str
    payment_id: uuid.UUID
    amount: int
    status: str


class WebhookAck(BaseModel):
    received: bool = True
    result: str
