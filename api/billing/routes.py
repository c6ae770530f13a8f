"""HTTP endpoints of billing: thin wrappers around the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from api.auth.dependencies import CurrentUser, SettingsDep
from api.auth.models import User
from api.billing import checkout, service
from api.billing.entitlements import require_entitlement
from api.billing.schemas import (
    CancelRequest,
    CheckoutCreate,
    CheckoutCreated,
    PlanChange,
    PortalCreate,
    PortalSession,
    PremiumReport,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
)
from api.db import DatabaseDep, SessionDep
from api.payments.dependencies import GatewayDep, RuntimeDep
from api.payments.routes import IdempotencyKeyHeader
from api.payments.service import validate_idempotency_key
from api.problem_docs import problem_responses
from api.settings import Settings

router = APIRouter(prefix="/v1/billing", tags=["billing"])

_COMMON = {
    "_401": "the access token is missing, invalid or expired",
    "_429": "the rate limit is exhausted; retry after Retry-After seconds",
    "_503": "payments are not configured, or the database is unavailable",
}
_PROVIDER = {"_502": "Stripe did not accept the request; retry"}
_INVALID = {"_422": "the body is invalid, or names no such price"}


def _grace(settings: Settings) -> timedelta:
    return timedelta(days=settings.billing_grace_period_days)


@router.post(
    "/checkout",
    status_code=201,
    responses=problem_responses(
        **_COMMON,
        **_PROVIDER,
        _409="the price is a plan and the user already has a subscription",
        _422="the body is invalid, names no such price, or a URL is on a foreign origin",
    ),
)
async def create_checkout(
    body: CheckoutCreate,
    user: CurrentUser,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> CheckoutCreated:
    """A Stripe Checkout Session: `subscription` mode for a plan, `payment` for a one-time
    price. Redirect the browser to `url`; the webhook records the outcome."""
    return await checkout.create_checkout(
        database.sessions,
        gateway,
        runtime.catalog,
        user=user,
        body=body,
        allowed_origins=settings.billing_redirect_origins,
    )


@router.post(
    "/subscriptions",
    status_code=201,
    responses=problem_responses(
        **_COMMON,
        **_PROVIDER,
        _400="the Idempotency-Key header is missing or malformed",
        _409="the user already has a subscription",
        _422="the body is invalid, names no such plan, or reuses a key with another body",
    ),
)
async def create_subscription(
    body: SubscriptionCreate,
    user: CurrentUser,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SubscriptionCreated:
    """Subscribe to a plan for an in-app payment form: the subscription starts `incomplete`;
    confirm its first payment with `client_secret` (Stripe.js) and it becomes `active`."""
    key = validate_idempotency_key(idempotency_key)
    return await service.create_subscription(
        database.sessions,
        gateway,
        runtime.catalog,
        user=user,
        price_id=body.price_id,
        idempotency_key=key,
    )


@router.get(
    "/subscription",
    responses=problem_responses(**_COMMON, _404="the user has no subscription"),
)
async def get_subscription(
    user: CurrentUser, runtime: RuntimeDep, session: SessionDep, settings: SettingsDep
) -> SubscriptionOut:
    """The user's current subscription and what it grants now."""
    return await service.get_subscription(
        session, runtime.catalog, user=user, grace=_grace(settings)
    )


_CHANGE_RESPONSES: dict[str, str] = {
    **_COMMON,
    **_PROVIDER,
    "_404": "the user has no subscription",
}


@router.post(
    "/subscription/cancel",
    responses=problem_responses(
        **_CHANGE_RESPONSES,
        _403="only administrators may cancel immediately",
        _409="the subscription has already ended",
        _422="the body is invalid",
    ),
)
async def cancel_subscription(
    user: CurrentUser,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    settings: SettingsDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> SubscriptionOut:
    """Cancel at the end of the paid period (entitlements last until then); administrators
    may pass `immediately: true`."""
    return await service.cancel_subscription(
        database.sessions,
        gateway,
        runtime.catalog,
        user=user,
        immediately=body.immediately if body else False,
        grace=_grace(settings),
    )


@router.post(
    "/subscription/resume",
    responses=problem_responses(
        **_CHANGE_RESPONSES, _409="the subscription has ended or is not set to cancel"
    ),
)
async def resume_subscription(
    user: CurrentUser,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> SubscriptionOut:
    """Undo a cancellation that has not taken effect yet."""
    return await service.resume_subscription(
        database.sessions, gateway, runtime.catalog, user=user, grace=_grace(settings)
    )


@router.post(
    "/subscription/change",
    responses=problem_responses(
        **_CHANGE_RESPONSES,
        **_INVALID,
        _409="the subscription has ended or is already on that plan",
    ),
)
async def change_plan(
    body: PlanChange,
    user: CurrentUser,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> SubscriptionOut:
    """Swap the plan now; Stripe prorates the difference on the next invoice."""
    return await service.change_plan(
        database.sessions,
        gateway,
        runtime.catalog,
        user=user,
        price_id=body.price_id,
        grace=_grace(settings),
    )


@router.post(
    "/portal",
    responses=problem_responses(
        **_COMMON, **_PROVIDER, _422="the body is invalid or return_url is on a foreign origin"
    ),
)
async def create_portal(
    body: PortalCreate,
    user: CurrentUser,
    gateway: GatewayDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> PortalSession:
    """A link to Stripe's customer portal (payment methods, invoices, plan, cancellation)."""
    url = await checkout.create_portal(
        database.sessions,
        gateway,
        user=user,
        return_url=body.return_url,
        allowed_origins=settings.billing_redirect_origins,
    )
    return PortalSession(url=url)


PREMIUM = "premium_reports"
_PREMIUM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(
    _401=_COMMON["_401"],
    _403=f"the user's plan does not grant {PREMIUM!r}",
    _429=_COMMON["_429"],
    _503="the database is unavailable",
)


@router.get("/premium-report", responses=_PREMIUM_RESPONSES)
async def premium_report(
    user: Annotated[User, Depends(require_entitlement(PREMIUM))],
) -> PremiumReport:
    """An example of an endpoint guarded by an entitlement (`require_entitlement`)."""
    return PremiumReport(user_id=str(user.id), entitlement=PREMIUM)
