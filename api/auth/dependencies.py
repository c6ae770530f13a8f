"""`CurrentUser` and `AdminUser`: the authentication every protected route depends on.

The access token is verified, then the user and the token's session are looked up (Redis
cache, else one PostgreSQL round trip outside any transaction, which also reads the facets
other domains cache with the user: api.user_cache.UserFacet), so that a disabled user's
tokens stop working at their next request and a changed role applies at once: every such
change invalidates the cached user (api.user_cache) after it commits.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Select, bindparam, select
from sqlmodel import col

from api.auth.keys import KeyRing, load_keyring
from api.auth.models import RefreshTokenFamily, User, cached_user, user_entry
from api.auth.tokens import InvalidAccessTokenError
from api.auth.verified_tokens import TokenVerifier
from api.db import Database, database_of
from api.errors import ProblemError
from api.settings import Settings
from api.user_cache import UserFacet, facet_entries, with_facets

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


def token_verifier_for(app: FastAPI) -> TokenVerifier:
    """The app's access-token verifier (it remembers results: api.auth.verified_tokens)."""
    keys, settings = keyring_for(app), app.state.settings
    verifier: TokenVerifier | None = getattr(app.state, "token_verifier", None)
    if verifier is None or not verifier.serves(keys, settings):
        verifier = TokenVerifier(keys, settings)
        app.state.token_verifier = verifier
    return verifier


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
    request: Request, token: Annotated[str | None, Depends(bearer_token)]
) -> User:
    if not token:
        raise invalid_token()
    try:
        claims = token_verifier_for(request.app).verify(token)
    except InvalidAccessTokenError as exc:
        logger.info("access token refused", extra={"reason": str(exc)})
        raise invalid_token() from None
    user = await _authenticated_user(request, claims.user_id, claims.session_id)
    if user is None:
        raise invalid_token()
    request.state.user_id = str(user.id)
    request.state.session_id = claims.session_id
    return user


def facet_of(request: Request, name: str) -> dict[str, Any] | None:
    """The facet `name` of the request's authenticated user (None before authentication)."""
    facets: dict[str, Any] = getattr(request.state, "user_facets", {})
    entry: dict[str, Any] | None = facets.get(name)
    return entry


async def _authenticated_user(
    request: Request, user_id: uuid.UUID, session_id: uuid.UUID
) -> User | None:
    """The enabled user whose session is live: from the cache, else one round trip."""
    database = database_of(request)
    cache = database.user_cache
    lookup = await cache.get(user_id, session_id) if cache is not None else None
    if lookup is not None and lookup.entry is not None:
        request.state.user_facets = lookup.entry["facets"]
        return cached_user(lookup.entry["user"])
    found = await _read_user(database, user_id, session_id)
    if found is None:
        return None
    user, facets = found
    request.state.user_facets = facets
    if cache is not None and lookup is not None and lookup.version is not None:
        # Only live sessions of enabled users are cached: a refusal always asks the database.
        entry = {"user": user_entry(user), "facets": facets}
        await cache.put(user_id, session_id, lookup.version, entry)
    return user


@functools.cache
def _user_read(facets: tuple[UserFacet, ...]) -> Select[*tuple[Any, ...]]:
    """The statement of `_read_user`, built once per set of facets: building it cost more
    than executing it."""
    statement = (
        select(User, col(RefreshTokenFamily.revoked_at))
        .join(RefreshTokenFamily, col(RefreshTokenFamily.user_id) == col(User.id))
        .where(
            col(User.id) == bindparam("user_id"),
            col(RefreshTokenFamily.id) == bindparam("session_id"),
        )
    )
    return with_facets(statement, facets, col(User.id))


async def _read_user(
    database: Database, user_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[User, dict[str, Any]] | None:
    """One round trip: the user, whether the token's session is live, and the facets."""
    facets = database.user_facets
    statement = _user_read(tuple(facets))
    async with database.readers() as reader:
        result = await reader.execute(statement, {"user_id": user_id, "session_id": session_id})
        row = result.first()
    if row is None or row[0].disabled or row[1] is not None:
        return None
    return row[0], facet_entries(facets, row._mapping)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise ProblemError(403, "this endpoint is for administrators")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
