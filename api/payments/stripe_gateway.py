"""The only module that talks to Stripe (the API and the reconciliation flow use it).

It wraps `stripe.StripeClient` with `STRIPE_API_BASE` honoured (a local emulator in tests),
network retries on (stripe-python resends a POST with the same Idempotency-Key, so a retry
never charges twice) and an async httpx transport, and hands back small typed values instead
of StripeObjects so nothing above it depends on the SDK's shapes.

stripe-python (with requests and its HTTP clients) is a large part of the API's import, and
most requests never call Stripe: it is imported by the first call, and the client is built then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import stripe
    from stripe.params import (
        EventListParams,
        RefundCreateParams,
        SubscriptionListParams,
        SubscriptionUpdateParams,
    )
    from stripe.params.checkout import SessionCreateParams

from api.billing.stripe_objects import (
    CheckoutSessionSnapshot,
    InvoiceSnapshot,
    SubscriptionSnapshot,
    parse_checkout_session,
    parse_invoice,
    parse_subscription,
)

DEFAULT_MAX_NETWORK_RETRIES = 2
# Long enough for Stripe's slow tail, short enough that a stuck call does not hold a request.
DEFAULT_TIMEOUT_SECONDS = 20.0


class PaymentProviderError(Exception):
    """A Stripe call failed. `retryable` is False when repeating it cannot help (a 4xx)."""

    def __init__(self, message: str, *, http_status: int | None, code: str | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.http_status is None or self.http_status == 409 or self.http_status >= 500


@dataclass(frozen=True, slots=True)
class PaymentIntentInfo:
    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None
    latest_charge_id: str | None
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RefundInfo:
    id: str
    status: str
    amount: int


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Stripe's errors as PaymentProviderError. The SDK's message may quote request
    parameters; callers log the code and status only."""
    import stripe

    try:
        yield
    except stripe.StripeError as exc:
        # Stripe's idempotency errors carry no code: name them, callers answer them differently.
        code = "idempotency_error" if isinstance(exc, stripe.IdempotencyError) else exc.code
        raise PaymentProviderError(
            exc.user_message or type(exc).__name__, http_status=exc.http_status, code=code
        ) from exc


def _id_of(value: Any) -> str | None:
    """A Stripe reference is either an id or an expanded object carrying one."""
    if value is None or isinstance(value, str):
        return value
    identifier = getattr(value, "id", None)
    return identifier if isinstance(identifier, str) else None


def _subscription(subscription: stripe.Subscription) -> SubscriptionSnapshot:
    """The snapshot, stamped with Stripe's own clock (the answer's Date header), so that it
    is ordered against webhook events by the same clock that stamps their `created`."""
    snapshot = parse_subscription(subscription.to_dict())
    response = subscription.last_response
    date = response.headers.get("date") if response is not None else None
    observed_at: datetime | None = None
    if date:
        try:
            observed_at = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            observed_at = None
    return dataclasses.replace(snapshot, observed_at=observed_at)


def _payment_intent_info(intent: stripe.PaymentIntent) -> PaymentIntentInfo:
    metadata: Mapping[str, Any] = intent.to_dict().get("metadata") or {}
    return PaymentIntentInfo(
        id=intent.id,
        status=intent.status,
        amount=intent.amount,
        currency=intent.currency,
        client_secret=intent.client_secret,
        latest_charge_id=_id_of(intent.latest_charge),
        metadata={str(key): str(value) for key, value in metadata.items()},
    )


class StripeGateway:
    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._secret_key = secret_key
        self._api_base = api_base
        self._max_network_retries = max_network_retries
        self._timeout_seconds = timeout_seconds
        self._http_client: stripe.HTTPXClient | None = None

    @cached_property
    def _client(self) -> stripe.StripeClient:
        import stripe

        self._http_client = stripe.HTTPXClient(timeout=self._timeout_seconds)
        return stripe.StripeClient(
            self._secret_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=self._max_network_retries,
            http_client=self._http_client,
        )

    async def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntentInfo:
        """Create (or, with the same key within Stripe's 24 h window, find) a PaymentIntent."""
        with _translated_errors():
            intent = await self._client.v1.payment_intents.create_async(
                params={"amount": amount, "currency": currency, "metadata": dict(metadata)},
                options={"idempotency_key": idempotency_key},
            )
        return _payment_intent_info(intent)

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        with _translated_errors():
            intent = await self._client.v1.payment_intents.retrieve_async(payment_intent_id)
        return _payment_intent_info(intent)

    async def create_refund(
        self, *, payment_intent_id: str, amount: int | None, idempotency_key: str
    ) -> RefundInfo:
        params: RefundCreateParams = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        with _translated_errors():
            refund = await self._client.v1.refunds.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return RefundInfo(id=refund.id, status=refund.status or "pending", amount=refund.amount)

    async def iter_events(
        self,
        *,
        created_gte: int | None = None,
        types: list[str] | None = None,
        delivery_success: bool | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events of the last 30 days (what Stripe keeps), newest first, as plain dicts.

        `delivery_success=False` lists the events whose webhook delivery has not succeeded yet:
        what a reconciliation replays through `api.payments.events.record_and_apply`.
        """
        params: EventListParams = {"limit": 100}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if types:
            params["types"] = types
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        with _translated_errors():
            page = await self._client.v1.events.list_async(params=params)
            async for event in page.auto_paging_iter():
                yield event.to_dict()

    # --- billing ---------------------------------------------------------------------------

    async def create_customer(
        self, *, email: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> str:
        """A Customer; the same key within Stripe's 24 h window answers the same Customer."""
        with _translated_errors():
            customer = await self._client.v1.customers.create_async(
                params={"email": email, "metadata": dict(metadata)},
                options={"idempotency_key": idempotency_key},
            )
        return customer.id

    async def create_subscription(
        self,
        *,
        customer_id: str,
        stripe_price_id: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SubscriptionSnapshot:
        """A subscription left `incomplete` until the customer confirms its first payment
        with the returned client secret (Stripe's `default_incomplete` flow)."""
        with _translated_errors():
            subscription = await self._client.v1.subscriptions.create_async(
                params={
                    "customer": customer_id,
                    "items": [{"price": stripe_price_id}],
                    "payment_behavior": "default_incomplete",
                    "payment_settings": {"save_default_payment_method": "on_subscription"},
                    "metadata": dict(metadata),
                    "expand": ["latest_invoice.confirmation_secret"],
                },
                options={"idempotency_key": idempotency_key},
            )
        return _subscription(subscription)

    async def retrieve_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        with _translated_errors():
            subscription = await self._client.v1.subscriptions.retrieve_async(subscription_id)
        return _subscription(subscription)

    async def update_subscription(
        self,
        subscription_id: str,
        *,
        cancel_at_period_end: bool | None = None,
        item_id: str | None = None,
        stripe_price_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> SubscriptionSnapshot:
        """Cancel at period end, resume, or swap the price of the item (prorated)."""
        params: SubscriptionUpdateParams = {}
        if cancel_at_period_end is not None:
            params["cancel_at_period_end"] = cancel_at_period_end
        if item_id is not None and stripe_price_id is not None:
            params["items"] = [{"id": item_id, "price": stripe_price_id}]
            params["proration_behavior"] = "create_prorations"
        with _translated_errors():
            subscription = await self._client.v1.subscriptions.update_async(
                subscription_id,
                params=params,
                options={"idempotency_key": idempotency_key} if idempotency_key else {},
            )
        return _subscription(subscription)

    async def cancel_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        """End the subscription now (no proration credit)."""
        with _translated_errors():
            subscription = await self._client.v1.subscriptions.cancel_async(subscription_id)
        return _subscription(subscription)

    async def iter_subscriptions(self) -> AsyncIterator[SubscriptionSnapshot]:
        """Every subscription, any status (a `created` filter is left out: localstripe, the
        emulator this is tested against, refuses it)."""
        params: SubscriptionListParams = {"limit": 100, "status": "all"}
        with _translated_errors():
            page = await self._client.v1.subscriptions.list_async(params=params)
            async for subscription in page.auto_paging_iter():
                yield parse_subscription(subscription.to_dict())

    async def retrieve_invoice(self, invoice_id: str) -> InvoiceSnapshot:
        with _translated_errors():
            invoice = await self._client.v1.invoices.retrieve_async(invoice_id)
        return parse_invoice(invoice.to_dict())

    async def create_checkout_session(
        self, params: SessionCreateParams, *, idempotency_key: str
    ) -> CheckoutSessionSnapshot:
        with _translated_errors():
            session = await self._client.v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return parse_checkout_session(session.to_dict())

    async def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        """The URL of a customer-portal session (short-lived, single customer)."""
        with _translated_errors():
            session = await self._client.v1.billing_portal.sessions.create_async(
                params={"customer": customer_id, "return_url": return_url}
            )
        return session.url

    async def close(self) -> None:
        if self._http_client is not None:
            await self._http_client.close_async()  # type: ignore[no-untyped-call]
