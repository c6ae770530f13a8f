"""Helpers for the payment tests: Stripe example objects, signed deliveries, a minimal Stripe
server for what localstripe lacks, and looks at the database from outside.

Fixtures that start these live in tests/api/stripe_emulator.py (loaded by the test modules
with `pytest_plugins`); this module holds no fixtures, so importing it never imports the plugin.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import stripe
from fastapi import FastAPI
from sqlalchemy import create_engine, select
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.models import metadata
from api.settings import Settings
from tests.api.auth_helpers import register_and_login
from tests.conftest import make_settings

STRIPE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
STRIPE_SECRET_KEY = "sk_test_slipway_payments"
WEBHOOK_SECRET = "whsec_current_0123456789abcdef"
PREVIOUS_WEBHOOK_SECRET = "whsec_previous_0123456789abcdef"
START_TIMEOUT_SECONDS = 20


def count_payment_intents(client: stripe.StripeClient) -> int:
    """How many PaymentIntents localstripe holds (its lists carry a total_count)."""
    page = client.v1.payment_intents.list(params={"limit": 1}).to_dict()
    total: int = page["total_count"]
    return total


def confirm_with_test_card(client: stripe.StripeClient, payment_intent_id: str) -> None:
    """The customer's side of a checkout: attach Stripe's test Visa card and confirm."""
    client.v1.payment_intents.update(payment_intent_id, params={"payment_method": "pm_card_visa"})
    client.v1.payment_intents.confirm(payment_intent_id)


def emulator_event(client: stripe.StripeClient, event_type: str, object_id: str) -> dict[str, Any]:
    """The event localstripe recorded for `object_id`, exactly as it would deliver it."""
    for event in client.v1.events.list(params={"type": event_type, "limit": 100}).data:
        found: dict[str, Any] = event.to_dict()
        if found["data"]["object"]["id"] == object_id:
            return found
    raise AssertionError(f"localstripe has no {event_type} for {object_id}")


# --- our own minimal Stripe: Idempotency-Key replay and lost answers ----------------------


@dataclass
class ReplayingStripe:
    """POST /v1/payment_intents with Stripe's idempotency semantics, recorded for assertions.

    `lose_answers = n`: the next n requests are carried out (or replayed) but answered with a
    500, as if the answer was lost on the way back; stripe-python retries with the same key.
    """

    url: str = ""
    lose_answers: int = 0
    # Seconds each create takes to answer: a request holding its Idempotency-Key meanwhile.
    delay_seconds: float = 0.0
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str | None] = field(default_factory=list)
    _replays: dict[str, tuple[dict[str, str], dict[str, Any]]] = field(default_factory=dict)

    def reset(self) -> None:
        self.lose_answers = 0
        self.delay_seconds = 0.0
        self.intents.clear()
        self.requests.clear()
        self._replays.clear()

    async def create_payment_intent(self, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        params = {name: str(value) for name, value in (await request.form()).items()}
        self.requests.append(key)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if key is not None and key in self._replays:
            first_params, intent = self._replays[key]
            if first_params != params:
                error = {"type": "idempotency_error", "message": "Keys for idempotent requests"}
                return JSONResponse({"error": error}, status_code=400)
            return self._answer(intent, {"Idempotent-Replayed": "true"})
        intent_id = f"pi_{uuid.uuid4().hex[:24]}"
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
            "latest_charge": None,
            "metadata": {
                name[len("metadata[") : -1]: value
                for name, value in params.items()
                if name.startswith("metadata[")
            },
        }
        self.intents[intent_id] = intent
        if key is not None:
            self._replays[key] = (params, intent)
        return self._answer(intent, {})

    def _answer(self, intent: dict[str, Any], headers: dict[str, str]) -> JSONResponse:
        if self.lose_answers > 0:
            self.lose_answers -= 1
            return JSONResponse({"error": {"type": "api_error"}}, status_code=500)
        return JSONResponse(intent, headers=headers)


# --- settings ---------------------------------------------------------------------------------


def payments_settings(database_url: str, stripe_api_base: str, **overrides: Any) -> Settings:
    return make_settings(
        database_url,
        stripe_secret_key=STRIPE_SECRET_KEY,
        stripe_webhook_secrets=[WEBHOOK_SECRET, PREVIOUS_WEBHOOK_SECRET],
        stripe_api_base=stripe_api_base,
        **overrides,
    )


# --- users and payments ---------------------------------------------------------------------


async def user_headers(client: httpx.AsyncClient, admin_app: FastAPI | None = None) -> Any:
    return (await register_and_login(client, admin_app=admin_app))["headers"]


async def create_payment(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    price_id: str = "price_onboarding_usd",
    quantity: int = 1,
    key: str | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/payments",
        json={"price_id": price_id, "quantity": quantity},
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


# --- webhook deliveries -------------------------------------------------------------------------


@cache
def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((STRIPE_FIXTURES / f"{name}.json").read_text())
    return loaded


def stripe_object(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of Stripe's example `name` object with `overrides` applied."""
    return {**copy.deepcopy(_fixture(name)), **overrides}


def payment_intent_object(payment: dict[str, Any], status: str, **overrides: Any) -> dict[str, Any]:
    return stripe_object(
        "payment_intent",
        id=payment["stripe_payment_intent_id"],
        amount=payment["amount"],
        currency=payment["currency"],
        client_secret=payment["client_secret"],
        metadata={"payment_id": payment["id"]},
        status=status,
        **overrides,
    )


def charge_object(payment: dict[str, Any], *, amount_refunded: int) -> dict[str, Any]:
    return stripe_object(
        "charge",
        id=f"ch_{payment['id'].replace('-', '')[:24]}",
        amount=payment["amount"],
        amount_captured=payment["amount"],
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= payment["amount"],
        currency=payment["currency"],
        payment_intent=payment["stripe_payment_intent_id"],
    )


def dispute_object(payment: dict[str, Any]) -> dict[str, Any]:
    return stripe_object(
        "dispute",
        amount=payment["amount"],
        charge=f"ch_{payment['id'].replace('-', '')[:24]}",
        currency=payment["currency"],
        payment_intent=payment["stripe_payment_intent_id"],
    )


def make_event(
    event_type: str, data_object: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    return stripe_object(
        "event",
        id=f"evt_{uuid.uuid4().hex[:24]}",
        type=event_type,
        created=created if created is not None else int(time.time()),
        data={"object": data_object},
    )


def signature_header(
    payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=timestamp
    )
    return header


async def deliver(
    client: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    """POST `event` to the webhook the way Stripe does: raw JSON body, signed."""
    payload = json.dumps(event)
    return await client.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(payload, secret, timestamp),
        },
    )


# --- the database, seen from outside ------------------------------------------------------------


def database_contents(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for 'nothing was written' assertions."""
    engine = create_engine(database_url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(
                    (
                        tuple(str(value) for value in row)
                        for row in connection.execute(select(table))
                    ),
                )
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()
