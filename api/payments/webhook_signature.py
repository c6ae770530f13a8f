"""Stripe webhook authentication: the `Stripe-Signature` header over the raw request body.

Every secret in STRIPE_WEBHOOK_SECRETS is tried (rotation: the old and new endpoint secrets
are both valid for a while). stripe-python compares signatures in constant time and refuses
timestamps older than the tolerance, which bounds how long a captured delivery can be replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.json_body import parse_json

SIGNATURE_TOLERANCE_SECONDS = 300
STRIPE_ID_PATTERN = r"^[A-Za-z0-9_]{1,255}$"


class InvalidSignatureError(Exception):
    """The delivery is not provably from Stripe (missing, wrong or stale signature)."""


class MalformedEventError(Exception):
    """A correctly signed body that is not a Stripe event object."""


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    if not header or not secrets:
        raise InvalidSignatureError("missing Stripe-Signature header")
    import stripe  # by the first delivery, not at start-up (api/payments/stripe_gateway.py)

    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance_seconds)
        except (stripe.SignatureVerificationError, ValueError):
            continue  # ValueError: a body that is not UTF-8 cannot have been signed by Stripe
        return
    raise InvalidSignatureError("no webhook secret matches the signature")


class _EventData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    object: dict[str, Any]


class _EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=STRIPE_ID_PATTERN)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    created: int = Field(ge=0, le=32_503_680_000)  # up to year 3000: fits a datetime
    data: _EventData


@dataclass(frozen=True, slots=True)
class StripeEventPayload:
    id: str
    type: str
    created_at: datetime
    object: dict[str, Any]
    raw: str


def parse_event(payload: bytes) -> StripeEventPayload:
    """The envelope of a verified delivery; the object itself is checked by its handler."""
    try:
        raw = payload.decode("utf-8")
        envelope = _EventEnvelope.model_validate(parse_json(raw))
    except (ValueError, ValidationError) as exc:
        # ValidationError is a ValueError; JSON (nesting included) and UTF-8 errors are too.
        raise MalformedEventError("the body is not a Stripe event") from exc
    return StripeEventPayload(
        id=envelope.id,
        type=envelope.type,
        created_at=datetime.fromtimestamp(envelope.created, UTC),
        object=envelope.data.object,
        raw=raw,
    )
