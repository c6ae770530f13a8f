"""Baseline for the webhook benchmark: a bare FastAPI endpoint that only verifies the Stripe
signature of the raw body (the same function the API uses), then answers 200."""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, Response

from api.payments.webhook_signature import InvalidSignatureError, verify_signature

SECRETS = [secret for secret in os.environ.get("STRIPE_WEBHOOK_SECRETS", "").split(",") if secret]

app = FastAPI()


@app.post("/v1/webhooks/stripe")
async def webhook(request: Request) -> Response:
    payload = await request.body()
    try:
        verify_signature(payload, request.headers.get("stripe-signature"), SECRETS)
    except InvalidSignatureError:
        return Response(status_code=400)
    return Response(b'{"received":true}', media_type="application/json")
