"""Wires billing into an app. It shares the payments runtime (catalog, Stripe gateway)."""

from __future__ import annotations

from fastapi import FastAPI

from api.billing import routes


def install_billing(app: FastAPI) -> None:
    app.include_router(routes.router)
