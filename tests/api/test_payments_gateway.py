"""The Stripe gateway against localstripe: what the API and the reconciliation flow call."""

from __future__ import annotations

import time
import uuid

import pytest
import stripe

from api.payments.stripe_gateway import PaymentProviderError, StripeGateway
from tests.api.payments_support import STRIPE_SECRET_KEY, confirm_with_test_card

pytest_plugins = ("tests.api.stripe_emulator",)


async def test_create_retrieve_refund_and_list_events(
    localstripe_url: str, stripe_client: stripe.StripeClient
) -> None:
    gateway = StripeGateway(STRIPE_SECRET_KEY, api_base=localstripe_url)
    started = int(time.time())
    payment_id = str(uuid.uuid4())
    try:
        created = await gateway.create_payment_intent(
            amount=1200,
            currency="eur",
            metadata={"payment_id": payment_id},
            idempotency_key=f"slipway-payment-{payment_id}",
        )
        assert (created.amount, created.currency, created.status) == (
            1200,
            "eur",
            "requires_payment_method",
        )
        assert created.metadata == {"payment_id": payment_id}

        confirm_with_test_card(stripe_client, created.id)
        paid = await gateway.retrieve_payment_intent(created.id)
        assert paid.status == "succeeded"
        assert paid.latest_charge_id is not None
        assert paid.latest_charge_id.startswith("ch_")

        refund = await gateway.create_refund(
            payment_intent_id=created.id, amount=200, idempotency_key=str(uuid.uuid4())
        )
        assert (refund.amount, refund.status) == (200, "succeeded")

        events = [event async for event in gateway.iter_events(created_gte=started)]
        assert any(
            event["type"] == "payment_intent.succeeded"
            and event["data"]["object"]["id"] == created.id
            for event in events
        )
    finally:
        await gateway.close()


async def test_stripe_errors_become_provider_errors(localstripe_url: str) -> None:
    gateway = StripeGateway(STRIPE_SECRET_KEY, api_base=localstripe_url)
    try:
        with pytest.raises(PaymentProviderError) as raised:
            await gateway.retrieve_payment_intent("pi_does_not_exist")
        assert raised.value.http_status == 404
        assert not raised.value.retryable
    finally:
        await gateway.close()


async def test_an_unreachable_stripe_is_a_retryable_provider_error() -> None:
    # Port 9 (discard) is closed here: every attempt, retries included, is refused.
    gateway = StripeGateway(STRIPE_SECRET_KEY, api_base="http://127.0.0.1:9", max_network_retries=0)
    try:
        with pytest.raises(PaymentProviderError) as raised:
            await gateway.retrieve_payment_intent("pi_any")
        assert raised.value.retryable
    finally:
        await gateway.close()
