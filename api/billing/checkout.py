"""Stripe Checkout and the customer portal: hosted pages the user is redirected to.

Redirect URLs come from the client, so they are checked against BILLING_REDIRECT_ORIGINS:
Stripe would otherwise send a paying customer to whatever site the request named.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import User
from api.billing import entitlements
from api.billing.customers import ensure_customer, provider_error
from api.billing.schemas import CheckoutCreate, CheckoutCreated
from api.errors import ProblemError
from api.payments.prices import PriceCatalog
from api.payments.stripe_gateway import PaymentProviderError, StripeGateway

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


def _origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL without credentials, else None."""
    try:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return None
        if parsed.username is not None or any(char.isspace() for char in url):
            return None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    return f"{parsed.scheme}://{parsed.netloc.lower()}"


def check_redirect(url: str, allowed_origins: list[str], field: str) -> str:
    if _origin(url) not in allowed_origins:
        error = {"loc": ["body", field], "msg": "origin not allowed", "type": "value_error"}
        raise ProblemError(
            422,
            f"{field} must be on one of the origins in BILLING_REDIRECT_ORIGINS",
            slug="redirect-not-allowed",
            extra={"errors": [error]},
        )
    return url


async def create_checkout(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    catalog: PriceCatalog,
    *,
    user: User,
    body: CheckoutCreate,
    allowed_origins: list[str],
) -> CheckoutCreated:
    price = catalog.get(body.price_id)
    if price is None:
        raise ProblemError(422, f"there is no price {body.price_id!r}", slug="unknown-price")
    success_url = check_redirect(body.success_url, allowed_origins, "success_url")
    cancel_url = check_redirect(body.cancel_url, allowed_origins, "cancel_url")
    if price.is_recurring:
        async with sessions() as session:
            current = await entitlements.current_subscription(session, user.id)
        if current is not None and current.status in entitlements.LIVE_STATUSES:
            raise ProblemError(
                409,
                "you already have a subscription: change its plan instead",
                slug="already-subscribed",
            )
    customer_id = await ensure_customer(sessions, gateway, user)
    metadata = {"user_id": str(user.id), "price_id": price.id}
    params: SessionCreateParams = {
        "customer": customer_id,
        "client_reference_id": str(user.id),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if price.is_recurring:
        params["mode"] = "subscription"
        params["line_items"] = [{"price": price.stripe_price_id, "quantity": 1}]
        params["subscription_data"] = {"metadata": metadata}
    else:
        # One-time prices have no Stripe Price: the amount is the catalog's, as for payments.
        params["mode"] = "payment"
        params["line_items"] = [
            {
                "quantity": 1,
                "price_data": {
                    "currency": price.currency,
                    "unit_amount": price.unit_amount,
                    "product_data": {"name": price.product},
                },
            }
        ]
        params["payment_intent_data"] = {"metadata": metadata}
    try:
        # One key for this call's retries; each POST is a new session (they expire unused).
        checkout = await gateway.create_checkout_session(
            params, idempotency_key=f"slipway-checkout-{uuid.uuid4()}"
        )
    except PaymentProviderError as exc:
        raise provider_error("creating a Checkout Session", exc) from None
    if checkout.url is None:
        raise ProblemError(502, "the payment provider returned no Checkout URL")
    return CheckoutCreated(id=checkout.id, url=checkout.url)


async def create_portal(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    user: User,
    return_url: str,
    allowed_origins: list[str],
) -> str:
    url = check_redirect(return_url, allowed_origins, "return_url")
    customer_id = await ensure_customer(sessions, gateway, user)
    try:
        return await gateway.create_portal_session(customer_id=customer_id, return_url=url)
    except PaymentProviderError as exc:
        raise provider_error("creating a portal session", exc) from None
