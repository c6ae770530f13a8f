"""`CurrentUser` and `AdminUser`: the authentication every protected route depends on.

The access token is verified, then the user is loaded by primary key, so that a disabled
user's tokens stop working at their next request and a changed role applies at once.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlmodel import col

from api.auth.keys import KeyRing, load_keyring
from api.auth.models import RefreshTokenFamily, User
from api.auth.tokens import InvalidAccessTokenError, verify_access_token
from api.db import SessionDep
from api.errors import ProblemError
from api.settings import Settings

logger = logging.getLogger("api.auth")

INVALID_TOKEN_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

# auto_error=False: a missing token gets our own problem+json 401, not FastAPI's default body.
# tokenUrl lets the OpenAPI UI log in with the password form.
bearer_token = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def keyring_for(app: FastAPI) -> KeyRing:
    """The app's keys, loaded by the auth start-up hook (or here, on first use)."""
    keys: KeyRing | None = getattr(app.state, "auth_keys", None)
    if keys is None:
        keys = load_keyring(app.state.settings)
        app.state.auth_keys = keys
    return keys


async def get_keyring(request: Request) -> KeyRing:
    return keyring_for(request.app)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def invalid_token() -> ProblemError:
    # One answer for every failure: the client learns nothing about why a token was refused.
    return ProblemError(
        401,
        "the access token is missing, invalid or expired",
        slug="invalid-token",
        headers=INVALID_TOKEN_HEADERS,
    )


async def get_current_user(
    request: Request,
    session: SessionDep,
    keys: KeyRingDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(bearer_token)],
) -> User:
    if not token:
        raise invalid_token()
    try:
        claims = verify_access_token(keys, settings, token)
    except InvalidAccessTokenError as exc:
        logger.info("access token refused", extra={"reason": str(exc)})
        raise invalid_token() from None
    # One round trip: the user, and whether the token's session is still live.
    row = (
        await session.execute(
            select(User, col(RefreshTokenFamily.revoked_at))
            .join(RefreshTokenFamily, col(RefreshTokenFamily.user_id) == col(User.id))
            .where(col(User.id) == claims.user_id, col(RefreshTokenFamily.id) == claims.session_id)
        )
    ).first()
    if row is None or row[0].disabled or row[1] is not None:
        raise invalid_token()
    user: User = row[0]
    request.state.user_id = str(user.id)
    request.state.session_id = claims.session_id
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise ProblemError(403, "this endpoint is for administrators")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
