"""Wires auth into an app: routers, and the start-up hook that loads keys and the first admin."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.auth import routes, service
from api.auth.dependencies import keyring_for

logger = logging.getLogger("api.auth")


class BootstrapAdminError(RuntimeError):
    """The bootstrap admin settings are unusable; the start-up stops, naming the variable."""


async def bootstrap_admin(app: FastAPI) -> None:
    """Create BOOTSTRAP_ADMIN_EMAIL as an admin unless that user exists (safe on every start)."""
    settings = app.state.settings
    if settings.bootstrap_admin_email is None or settings.bootstrap_admin_password is None:
        return
    async with app.state.database.sessions() as db:
        try:
            created = await service.ensure_admin(
                db,
                settings.bootstrap_admin_email,
                settings.bootstrap_admin_password.get_secret_value(),
            )
        except service.WeakPasswordError as exc:
            raise BootstrapAdminError(f"BOOTSTRAP_ADMIN_PASSWORD: {exc}") from None
        except service.AuthError as exc:
            raise BootstrapAdminError(f"BOOTSTRAP_ADMIN_EMAIL: {exc}") from None
    if created:
        logger.info("bootstrap admin created")


async def auth_startup(app: FastAPI) -> None:
    keyring_for(app)  # a broken JWT_PRIVATE_KEYS stops the start-up, not the first request
    await bootstrap_admin(app)


def install_auth(app: FastAPI) -> None:
    for router in (routes.router, routes.users_router, routes.admin_router, routes.jwks_router):
        app.include_router(router)
    app.state.startup_hooks.append(auth_startup)
