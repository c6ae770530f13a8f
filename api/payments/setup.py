"""Wires payments into an app: routers, and the hooks that build and close the runtime."""

from __future__ import annotations

from fastapi import FastAPI

from api.payments import routes
from api.payments.dependencies import PaymentsRuntime, runtime_for


async def payments_startup(app: FastAPI) -> None:
    runtime_for(app)


async def payments_shutdown(app: FastAPI) -> None:
    runtime: PaymentsRuntime | None = getattr(app.state, "payments", None)
    if runtime is not None and runtime.gateway is not None:
        await runtime.gateway.close()
    app.state.payments = None


def install_payments(app: FastAPI) -> None:
    for router in (routes.prices_router, routes.payments_router, routes.webhooks_router):
        app.include_router(router)
    app.state.startup_hooks.append(payments_startup)
    app.state.shutdown_hooks.append(payments_shutdown)
