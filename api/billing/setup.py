"""Wires billing into an app. It shares the payments runtime (catalog, Stripe gateway)."""

from __future__ import annotations

from fastapi import FastAPI

from api.billing import routes
from api.billing.metrics import billing_unavailable, collect_billing
from api.observability.routes import add_scrape_source


def install_billing(app: FastAPI) -> None:
    app.include_router(routes.router)
    add_scrape_source(app, collect_billing, billing_unavailable)
