"""Baselines for the webhook benchmark, bare FastAPI endpoints built from the API's own parts:

POST /v1/webhooks/stripe   verifies the Stripe signature of the raw body, answers 200
POST /store                the same, then parses the event and inserts its row in one
                           transaction (ON CONFLICT DO NOTHING): verified and stored, no
                           payment touched, no middleware, no dependency injection
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, Response
from sqlalchemy.dialects import postgresql

from api.db import Database
from api.payments.models import StripeEvent, utc_now
from api.payments.webhook_signature import InvalidSignatureError, parse_event, verify_signature

SECRETS = [secret for secret in os.environ.get("STRIPE_WEBHOOK_SECRETS", "").split(",") if secret]
DATABASE = Database(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./.data/bench.db"))
OK = b'{"received":true}'

app = FastAPI()


@app.post("/v1/webhooks/stripe")
async def verify_only(request: Request) -> Response:
    payload = await request.body()
    try:
        verify_signature(payload, request.headers.get("stripe-signature"), SECRETS)
    except InvalidSignatureError:
        return Response(status_code=400)
    return Response(OK, media_type="application/json")


@app.post("/store")
async def verify_and_store(request: Request) -> Response:
    payload = await request.body()
    try:
        verify_signature(payload, request.headers.get("stripe-signature"), SECRETS)
    except InvalidSignatureError:
        return Response(status_code=400)
    event = parse_event(payload)
    now = utc_now()
    async with DATABASE.sessions() as session, session.begin():
        await session.execute(
            postgresql.insert(StripeEvent)
            .values(
                id=event.id,
                type=event.type,
                payload=event.raw,
                event_created_at=event.created_at,
                received_at=now,
                processed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    return Response(OK, media_type="application/json")
