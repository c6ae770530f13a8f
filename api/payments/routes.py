"""HTTP endpoints of payments (docs/api.md): thin wrappers around the services."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from api.auth.dependencies import AdminUser, CurrentUser
from api.billing.events import BILLING_EVENT_TYPES
from api.db import DatabaseDep, ReaderDep, SessionDep, database_of
from api.errors import ProblemError, is_database_unavailable
from api.http_caching import NOT_MODIFIED_RESPONSE
from api.observability.metrics import (
    billing_webhook_events_total,
    payments_status_transitions_total,
    stripe_webhook_events_total,
    stripe_webhook_processing_seconds,
)
from api.payments import service
from api.payments.dependencies import GatewayDep, RuntimeDep, not_configured, runtime_for
from api.payments.events import metric_type_label, record_and_apply
from api.payments.models import IDEMPOTENCY_KEY_MAX_LENGTH
from api.payments.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PaymentCreate,
    PaymentOut,
    PaymentPage,
    PriceOut,
    RefundAccepted,
    RefundCreate,
    WebhookAck,
)
from api.payments.webhook_signature import (
    InvalidSignatureError,
    MalformedEventError,
    parse_event,
    verify_signature,
)

prices_router = APIRouter(prefix="/v1/prices", tags=["payments"])
payments_router = APIRouter(prefix="/v1/payments", tags=["payments"])
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

# What service.validate_idempotency_key accepts, stated in the schema (the service still checks
# it, answering 400): 1-255 printable ASCII characters, no surrounding spaces.
_IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
    "pattern": "^[!-~]([ -~]*[!-~])?$",
}
_IDEMPOTENCY_KEY_DESCRIPTION = "retries with the same key and body get the same answer"
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=_IDEMPOTENCY_KEY_DESCRIPTION,
        json_schema_extra=_IDEMPOTENCY_KEY_SCHEMA,
    ),
]
# On create the key is required; the service answers its absence with 400 (not FastAPI's 422),
# so the parameter is read unvalidated and documented here as required.
_REQUIRED_IDEMPOTENCY_KEY = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": _IDEMPOTENCY_KEY_DESCRIPTION,
            "schema": _IDEMPOTENCY_KEY_SCHEMA,
        }
    ]
}
_NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    503: {"description": "payments are not configured"}
}
_PROVIDER_FAILED: dict[int | str, dict[str, Any]] = {
    502: {"description": "Stripe did not accept the request; retry"}
}


@prices_router.get("", response_model=list[PriceOut], responses=NOT_MODIFIED_RESPONSE)
async def list_prices(request: Request) -> Response:
    """The catalog; cacheable for a few minutes, revalidated with `If-None-Match`."""
    # The runtime is looked up directly rather than injected: a dependency to solve was a
    # fifth of this hot, public endpoint's CPU (docs/performance.md).
    return runtime_for(request.app).prices.response(request)


@payments_router.post(
    "",
    status_code=201,
    response_model=PaymentOut,
    responses={
        400: {"description": "no or malformed Idempotency-Key"},
        409: {"description": "a request with this Idempotency-Key is still being processed"},
        **_PROVIDER_FAILED,
        **_NOT_CONFIGURED,
    },
    openapi_extra=_REQUIRED_IDEMPOTENCY_KEY,
)
async def create_payment(
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    user: CurrentUser,
    body: PaymentCreate,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", include_in_schema=False)
    ] = None,
) -> JSONResponse:
    key = service.validate_idempotency_key(idempotency_key)
    stored = await service.create_payment(
        database.sessions,
        gateway,
        runtime.catalog,
        user_id=user.id,
        idempotency_key=key,
        body=body,
    )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


@payments_router.get("", response_model=PaymentPage, responses=_NOT_CONFIGURED)
async def list_payments(
    _: GatewayDep,
    session: ReaderDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PaymentPage:
    return await service.list_payments(session, user_id=user.id, limit=limit, cursor=cursor)


@payments_router.get("/{payment_id}", response_model=PaymentOut, responses=_NOT_CONFIGURED)
async def get_payment(
    _: GatewayDep, session: ReaderDep, user: CurrentUser, payment_id: uuid.UUID
) -> PaymentOut:
    return await service.get_payment(session, user_id=user.id, payment_id=payment_id)


@payments_router.post(
    "/{payment_id}/refund",
    status_code=202,
    response_model=RefundAccepted,
    responses={
        403: {"description": "not an administrator"},
        409: {"description": "the payment cannot be refunded in its status, or Stripe refused"},
        **_PROVIDER_FAILED,
        **_NOT_CONFIGURED,
    },
)
async def refund_payment(
    gateway: GatewayDep,
    session: SessionDep,
    _: AdminUser,
    payment_id: uuid.UUID,
    body: Annotated[RefundCreate | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> RefundAccepted:
    return await service.refund_payment(
        session,
        gateway,
        payment_id=payment_id,
        amount=body.amount if body else None,
        idempotency_key=idempotency_key,
    )


_WEBHOOK_ACKS: dict[str, bytes] = {
    result: WebhookAck(result=result).model_dump_json().encode()
    for result in ("processed", "duplicate", "ignored")
}


@webhooks_router.post(
    "/stripe",
    response_model=WebhookAck,
    responses={400: {"description": "bad or missing signature"}, **_NOT_CONFIGURED},
    # The body is read raw (the signature covers its exact bytes), so it is documented here.
    openapi_extra={
        "parameters": [
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "description": "t=<unix time>,v1=<HMAC-SHA256>, as Stripe signs deliveries",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def stripe_webhook(request: Request) -> Response:
    started = time.perf_counter()
    # The throughput path of the service: the runtime and database are read directly, not
    # declared as dependencies, and the answer is one of a few bodies rendered once. FastAPI
    # resolving dependencies and validating a response model cost a tenth of a delivery.
    runtime = runtime_for(request.app)
    database = database_of(request)
    if runtime.gateway is None or not runtime.webhook_secrets:
        raise not_configured()
    payload = await request.body()
    try:
        # Nothing is parsed, stored or logged before the signature is checked.
        verify_signature(payload, request.headers.get("stripe-signature"), runtime.webhook_secrets)
    except InvalidSignatureError:
        stripe_webhook_events_total.labels(type="unverified", result="invalid_signature").inc()
        raise ProblemError(
            400,
            "the Stripe-Signature header is missing, invalid or too old",
            slug="invalid-signature",
        ) from None
    try:
        event = parse_event(payload)
    except MalformedEventError:
        stripe_webhook_events_total.labels(type="other", result="failed").inc()
        raise ProblemError(400, "the body is not a Stripe event", slug="malformed-event") from None

    try:
        outcome = await record_and_apply(database, event, runtime.catalog)
    except Exception as exc:
        if is_database_unavailable(exc):  # answered 503 by api.errors: Stripe redelivers
            stripe_webhook_events_total.labels(
                type=metric_type_label(event.type), result="failed"
            ).inc()
        raise
    stripe_webhook_events_total.labels(
        type=metric_type_label(event.type), result=outcome.result
    ).inc()
    if event.type in BILLING_EVENT_TYPES:
        billing_webhook_events_total.labels(
            type=event.type, outcome=outcome.billing or outcome.result
        ).inc()
    if outcome.transition is not None:
        payments_status_transitions_total.labels(status=outcome.transition).inc()
    stripe_webhook_processing_seconds.observe(time.perf_counter() - started)
    if outcome.result == "failed":
        # 5xx on purpose: Stripe redelivers, and the stored error says what went wrong.
        raise ProblemError(
            500, "the event could not be processed; it will be retried", slug="webhook-failed"
        )
    return Response(_WEBHOOK_ACKS[outcome.result], media_type="application/json")
