"""POST /v1/webhooks/stripe: verified, stored once, applied once, order-safe."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from tests.api.payments_support import (
    PREVIOUS_WEBHOOK_SECRET,
    charge_object,
    create_payment,
    database_contents,
    deliver,
    dispute_object,
    make_event,
    payment_intent_object,
    signature_header,
    stripe_object,
    user_headers,
)

pytest_plugins = ("tests.api.stripe_emulator",)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def webhook_metric(event_type: str, result: str) -> float:
    return metric("stripe_webhook_events_total", type=event_type, result=result)


async def _payment(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    headers = await user_headers(client)
    return await create_payment(client, headers), headers


async def _status(
    client: httpx.AsyncClient, payment: dict[str, Any], headers: dict[str, str]
) -> str:
    response = await client.get(f"/v1/payments/{payment['id']}", headers=headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_bad_signatures_are_refused_and_write_nothing(
    payments_client: httpx.AsyncClient, database_url: str
) -> None:
    payment, headers = await _payment(payments_client)
    payload = json.dumps(
        make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded"))
    )
    now = int(time.time())
    deliveries = {
        "missing": {},
        "wrong secret": {"Stripe-Signature": signature_header(payload, "whsec_not_ours_123")},
        "altered body": {"Stripe-Signature": signature_header(payload)},
        "301 s old": {"Stripe-Signature": signature_header(payload, timestamp=now - 301)},
        "garbage": {"Stripe-Signature": "t=abc,v1=zz"},
    }
    before = database_contents(database_url)
    refused_before = webhook_metric("unverified", "invalid_signature")

    for case, signature in deliveries.items():
        body = payload.replace("succeeded", "canceled") if case == "altered body" else payload
        response = await payments_client.post(
            "/v1/webhooks/stripe",
            content=body,
            headers={"Content-Type": "application/json", **signature},
        )
        assert response.status_code == 400, case
        assert response.headers["content-type"] == "application/problem+json"

    assert database_contents(database_url) == before
    assert webhook_metric("unverified", "invalid_signature") == refused_before + len(deliveries)
    assert await _status(payments_client, payment, headers) == "requires_payment_method"


async def test_a_previous_secret_still_verifies(payments_client: httpx.AsyncClient) -> None:
    payment, headers = await _payment(payments_client)
    event = make_event("payment_intent.processing", payment_intent_object(payment, "processing"))

    response = await deliver(payments_client, event, secret=PREVIOUS_WEBHOOK_SECRET)

    assert response.status_code == 200, response.text
    assert response.json()["result"] == "processed"
    assert await _status(payments_client, payment, headers) == "processing"


async def test_twenty_concurrent_deliveries_apply_once(
    payments_client: httpx.AsyncClient, database_url: str
) -> None:
    payment, headers = await _payment(payments_client)
    event = make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded"))
    transitions_before = metric("payments_status_transitions_total", status="succeeded")
    processed_before = webhook_metric("payment_intent.succeeded", "processed")
    duplicates_before = webhook_metric("payment_intent.succeeded", "duplicate")

    responses = await asyncio.gather(*(deliver(payments_client, event) for _ in range(20)))

    assert [response.status_code for response in responses] == [200] * 20
    results = sorted(response.json()["result"] for response in responses)
    assert results == ["duplicate"] * 19 + ["processed"]
    assert metric("payments_status_transitions_total", status="succeeded") == (
        transitions_before + 1
    )
    assert webhook_metric("payment_intent.succeeded", "processed") == processed_before + 1
    assert webhook_metric("payment_intent.succeeded", "duplicate") == duplicates_before + 19
    assert len(database_contents(database_url)["stripe_events"]) == 1
    assert await _status(payments_client, payment, headers) == "succeeded"


async def test_succeeded_before_processing_ends_succeeded(
    payments_client: httpx.AsyncClient,
) -> None:
    payment, headers = await _payment(payments_client)
    now = int(time.time())
    processing = make_event(
        "payment_intent.processing", payment_intent_object(payment, "processing"), created=now - 5
    )
    succeeded = make_event(
        "payment_intent.succeeded", payment_intent_object(payment, "succeeded"), created=now
    )

    assert (await deliver(payments_client, succeeded)).json()["result"] == "processed"
    late = await deliver(payments_client, processing)

    assert late.status_code == 200
    assert late.json()["result"] == "ignored"
    assert await _status(payments_client, payment, headers) == "succeeded"


async def test_an_older_event_never_replaces_a_newer_one(
    payments_client: httpx.AsyncClient,
) -> None:
    """failed -> processing is allowed (a retried card), but not from an older event."""
    payment, headers = await _payment(payments_client)
    now = int(time.time())
    failed = make_event(
        "payment_intent.payment_failed", payment_intent_object(payment, "requires_payment_method"),
        created=now,
    )  # fmt: skip
    older_processing = make_event(
        "payment_intent.processing", payment_intent_object(payment, "processing"), created=now - 60
    )
    newer_processing = make_event(
        "payment_intent.processing", payment_intent_object(payment, "processing"), created=now + 1
    )

    await deliver(payments_client, failed)
    assert (await deliver(payments_client, older_processing)).json()["result"] == "ignored"
    assert await _status(payments_client, payment, headers) == "failed"
    assert (await deliver(payments_client, newer_processing)).json()["result"] == "processed"
    assert await _status(payments_client, payment, headers) == "processing"


async def test_a_redelivered_event_is_a_duplicate(payments_client: httpx.AsyncClient) -> None:
    payment, _ = await _payment(payments_client)
    event = make_event("payment_intent.canceled", payment_intent_object(payment, "canceled"))

    first = await deliver(payments_client, event)
    second = await deliver(payments_client, event)

    assert (first.status_code, first.json()["result"]) == (200, "processed")
    assert (second.status_code, second.json()["result"]) == (200, "duplicate")


async def test_unknown_event_types_are_stored_and_acknowledged(
    payments_client: httpx.AsyncClient, database_url: str
) -> None:
    event = make_event("plan.created", stripe_object("event")["data"]["object"])
    other_before = webhook_metric("other", "ignored")

    response = await deliver(payments_client, event)

    assert (response.status_code, response.json()["result"]) == (200, "ignored")
    stored = database_contents(database_url)["stripe_events"]
    assert [row[0] for row in stored] == [event["id"]]
    assert webhook_metric("other", "ignored") == other_before + 1
    assert webhook_metric("plan.created", "ignored") == 0


async def test_a_processing_failure_keeps_the_event_and_answers_500(
    payments_client: httpx.AsyncClient, database_url: str, payments_app: FastAPI
) -> None:
    payment, headers = await _payment(payments_client)
    event = make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded"))
    broken = {**event, "data": {"object": {"object": "payment_intent"}}}  # no id

    failed = await deliver(payments_client, broken)

    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    async with payments_app.state.database.sessions() as session:
        from api.payments.models import StripeEvent

        row = await session.get(StripeEvent, event["id"])
    assert row is not None
    assert row.processed_at is None
    assert row.error is not None
    assert "id" in row.error

    # Stripe redelivers; this time the event is whole and gets applied.
    retried = await deliver(payments_client, event)
    assert (retried.status_code, retried.json()["result"]) == (200, "processed")
    assert await _status(payments_client, payment, headers) == "succeeded"
    rows = database_contents(database_url)["stripe_events"]
    assert len(rows) == 1


async def test_refund_events_move_to_partially_refunded_then_refunded(
    payments_client: httpx.AsyncClient,
) -> None:
    payment, headers = await _payment(payments_client)
    now = int(time.time())
    await deliver(
        payments_client,
        make_event(
            "payment_intent.succeeded", payment_intent_object(payment, "succeeded"), created=now
        ),
    )
    partial = make_event(
        "charge.refunded", charge_object(payment, amount_refunded=1000), created=now + 1
    )
    full = make_event(
        "charge.refunded",
        charge_object(payment, amount_refunded=payment["amount"]),
        created=now + 2,
    )

    await deliver(payments_client, partial)
    assert await _status(payments_client, payment, headers) == "partially_refunded"
    await deliver(payments_client, full)
    assert await _status(payments_client, payment, headers) == "refunded"
    # A late copy of the partial refund changes nothing.
    late = make_event(
        "charge.refunded", charge_object(payment, amount_refunded=1000), created=now + 1
    )
    assert (await deliver(payments_client, late)).json()["result"] == "ignored"
    assert await _status(payments_client, payment, headers) == "refunded"


async def test_a_dispute_marks_the_payment_disputed(payments_client: httpx.AsyncClient) -> None:
    payment, headers = await _payment(payments_client)
    await deliver(
        payments_client,
        make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded")),
    )

    response = await deliver(
        payments_client, make_event("charge.dispute.created", dispute_object(payment))
    )

    assert response.json()["result"] == "processed"
    assert await _status(payments_client, payment, headers) == "disputed"


async def test_events_for_unknown_payments_are_acknowledged(
    payments_client: httpx.AsyncClient,
) -> None:
    foreign = stripe_object("payment_intent", status="succeeded")  # created outside Slipway

    response = await deliver(payments_client, make_event("payment_intent.succeeded", foreign))

    assert (response.status_code, response.json()["result"]) == (200, "ignored")


@pytest.mark.parametrize(
    "body", [b"not json", b'{"id": "evt_1"}', b'{"id": "evt 1", "type": "x", "created": 1}']
)
async def test_signed_garbage_is_a_bad_request(
    payments_client: httpx.AsyncClient, database_url: str, body: bytes
) -> None:
    before = database_contents(database_url)
    header = signature_header(body.decode())
    response = await payments_client.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 400
    assert database_contents(database_url) == before
