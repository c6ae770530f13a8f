"""Wires payments into an app: routers, and the hooks that build and close the runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.openapi_document import constrain_property
from api.payments import routes
from api.payments.dependencies import PaymentsRuntime, runtime_for


async def payments_startup(app: FastAPI) -> None:
    runtime_for(app)


async def payments_shutdown(app: FastAPI) -> None:
    runtime: PaymentsRuntime | None = getattr(app.state, "payments", None)
    if runtime is not None and runtime.gateway is not None:
        await runtime.gateway.close()
    app.state.payments = None


def document_price_ids(app: FastAPI, document: dict[str, Any]) -> None:
    """`price_id` must name a one-time price of this deployment's catalog (recurring prices are
    subscribed to through billing): say which, in the schema, so that a request the schema
    allows is one the API accepts."""
    prices = runtime_for(app).catalog.all()
    one_time = sorted(price.id for price in prices if not price.is_recurring)
    constrain_property(document, "PaymentCreate", "price_id", enum=one_time)


def install_payments(app: FastAPI) -> None:
    for router in (routes.prices_router, routes.payments_router, routes.webhooks_router):
        app.include_router(router)
    app.state.startup_hooks.append(payments_startup)
    app.state.shutdown_hooks.append(payments_shutdown)
    app.state.openapi_refinements.append(document_price_ids)
