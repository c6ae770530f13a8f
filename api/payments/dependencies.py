"""The payments runtime (price catalog, Stripe gateway, webhook secrets) and its dependencies.

The catalog is loaded at start-up (a broken PRICES_FILE stops the deployment); the gateway
exists only when STRIPE_SECRET_KEY is set, and is created once per process because Mangum
runs the lifespan on every Lambda invocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import TypeAdapter

from api.errors import ProblemError
from api.http_caching import CachedRepresentation
from api.payments.prices import PriceCatalog, load_price_catalog
from api.payments.schemas import PriceOut
from api.payments.stripe_gateway import StripeGateway
from api.settings import Settings


@dataclass
class PaymentsRuntime:
    catalog: PriceCatalog
    gateway: StripeGateway | None
    webhook_secrets: list[str] = field(repr=False)

    @cached_property
    def prices(self) -> CachedRepresentation:
        """The catalog as the JSON body of GET /v1/prices, rendered once: it never changes
        while the process runs, and re-validating it per request halved that route's
        throughput."""
        adapter = TypeAdapter(list[PriceOut])
        body = adapter.dump_json([PriceOut.of(price) for price in self.catalog.all()])
        return CachedRepresentation(body)


def _build_runtime(settings: Settings) -> PaymentsRuntime:
    gateway = None
    if settings.stripe_secret_key is not None:
        gateway = StripeGateway(
            settings.stripe_secret_key.get_secret_value(), api_base=settings.stripe_api_base
        )
    return PaymentsRuntime(
        catalog=load_price_catalog(settings.prices_file),
        gateway=gateway,
        webhook_secrets=[secret.get_secret_value() for secret in settings.stripe_webhook_secrets],
    )


def runtime_for(app: FastAPI) -> PaymentsRuntime:
    runtime: PaymentsRuntime | None = getattr(app.state, "payments", None)
    if runtime is None:
        runtime = _build_runtime(app.state.settings)
        app.state.payments = runtime
    return runtime


async def get_runtime(request: Request) -> PaymentsRuntime:
    return runtime_for(request.app)


RuntimeDep = Annotated[PaymentsRuntime, Depends(get_runtime)]


def not_configured() -> ProblemError:
    return ProblemError(503, "payments are not configured", slug="payments-not-configured")


async def get_gateway(runtime: RuntimeDep) -> StripeGateway:
    if runtime.gateway is None:
        raise not_configured()
    return runtime.gateway


GatewayDep = Annotated[StripeGateway, Depends(get_gateway)]
