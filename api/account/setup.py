"""Wires the account endpoints into an app."""

from __future__ import annotations

from fastapi import FastAPI

from api.account import routes


def install_account(app: FastAPI) -> None:
    app.include_router(routes.router)
