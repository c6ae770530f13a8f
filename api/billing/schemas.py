"""Request and response bodies of the billing endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.billing.stripe_objects import SubscriptionStatus
from api.payments.prices import PriceId

MAX_URL_LENGTH = 2048


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_id: PriceId


class SubscriptionCreated(BaseModel):
    id: str = Field(description="the Stripe subscription id")
    status: SubscriptionStatus
    client_secret: str | None = Field(
        description="confirm the first payment with Stripe.js; null when nothing is due"
    )


class SubscriptionOut(BaseModel):
    id: str
    status: SubscriptionStatus
    price_id: str | None = Field(description="the catalog price; null if Stripe names another")
    product: str | None
    quantity: int
    current_period_end: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    canceled_at: datetime | None
    grace_period_ends_at: datetime | None = Field(
        description="past_due only: when the entitlements end unless the payment succeeds"
    )
    entitlements: list[str] = Field(description="what the subscription grants right now")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    immediately: bool = Field(
        default=False,
        description="end it now instead of at the end of the paid period (administrators only)",
    )


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_id: PriceId


class CheckoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_id: PriceId
    success_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    cancel_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)


class CheckoutCreated(BaseModel):
    id: str = Field(description="the Checkout Session id")
    url: str = Field(description="send the customer's browser here")


class PortalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)


class PortalSession(BaseModel):
    url: str = Field(description="a short-lived link to Stripe's customer portal")


class PremiumReport(BaseModel):
    user_id: str
    entitlement: str
