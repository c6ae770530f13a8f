"""HTTP endpoints of auth (docs/api.md): thin wrappers around api.auth.service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.account import service as account_service
from api.account.dependencies import email_not_verified
from api.auth import service, user_pages
from api.auth.dependencies import AdminUser, CurrentUser, KeyRingDep, SettingsDep
from api.auth.models import USER_AGENT_MAX_LENGTH, RefreshTokenFamily, User, as_utc
from api.auth.schemas import (
    AdminUserOut,
    CurrentUserOut,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    SessionOut,
    TokenPair,
    UserOut,
    UserPage,
)
from api.billing.entitlements import entitlements_of
from api.db import SessionDep, database_of
from api.email.setup import EmailSenderDep, email_sender_of
from api.errors import ProblemError
from api.http_caching import NOT_MODIFIED_RESPONSE
from api.problem_docs import problem_responses

router = APIRouter(prefix="/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/v1/users", tags=["users"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])
jwks_router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "not authenticated"}}
_LOGIN_REFUSED: dict[int | str, dict[str, Any]] = problem_responses(
    _401="email or password is incorrect",
    _403="REQUIRE_VERIFIED_EMAIL: the address is not verified (a new link is sent)",
)


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        role=user.role,
        created_at=as_utc(user.created_at),
        email_verified=user.email_verified_at is not None,
    )


def _client(request: Request) -> service.ClientInfo:
    user_agent = request.headers.get("user-agent")
    # The rate limiter resolves the client address (TRUSTED_PROXIES); otherwise the socket peer.
    ip = getattr(request.state, "client_ip", None) or (
        request.client.host if request.client else None
    )
    return service.ClientInfo(
        user_agent=user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None,
        ip=str(ip)[:45] if ip else None,
    )


def _pair(tokens: service.IssuedTokens) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


async def _no_store(response: Response) -> None:
    """Token responses must not be cached by browsers or proxies (RFC 6749 section 5.1)."""
    response.headers["Cache-Control"] = "no-store"


_TOKEN_RESPONSE = [Depends(_no_store)]


def _bad_credentials() -> ProblemError:
    # The same answer for an unknown email, a wrong password and a disabled account.
    return ProblemError(
        401,
        "email or password is incorrect",
        slug="invalid-credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _bad_refresh_token() -> ProblemError:
    return ProblemError(
        401,
        "the refresh token is invalid, expired or already used",
        slug="invalid-refresh-token",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post("/register", status_code=201, responses={409: {"description": "email taken"}})
async def register(
    body: RegisterRequest, db: SessionDep, settings: SettingsDep, sender: EmailSenderDep
) -> UserOut:
    """Create an account; a verification link goes to the address."""
    try:
        user = await service.register_user(db, body.email, body.password)
    except service.EmailTakenError as exc:
        raise ProblemError(409, str(exc), slug="email-taken") from None
    await account_service.send_verification(db, settings, sender, user)
    return user_out(user)


async def _login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    keys: KeyRingDep,
    email: str,
    password: str,
) -> TokenPair:
    try:
        user = await service.authenticate(db, email, password)
    except service.InvalidCredentialsError:
        raise _bad_credentials() from None
    if settings.verified_email_required and user.email_verified_at is None:
        await account_service.remind_unverified(db, settings, email_sender_of(request.app), user)
        raise email_not_verified()
    tokens = await service.start_session(db, settings, keys, user, _client(request))
    return _pair(tokens)


@router.post("/login", responses=_LOGIN_REFUSED, dependencies=_TOKEN_RESPONSE)
async def login(
    request: Request, body: LoginRequest, db: SessionDep, settings: SettingsDep, keys: KeyRingDep
) -> TokenPair:
    return await _login(request, db, settings, keys, body.email, body.password)


@router.post("/token", responses=_LOGIN_REFUSED, dependencies=_TOKEN_RESPONSE)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: SessionDep,
    settings: SettingsDep,
    keys: KeyRingDep,
) -> TokenPair:
    """OAuth2 password grant (`username` is the email), for the OpenAPI UI's Authorize button."""
    return await _login(request, db, settings, keys, form.username, form.password)


@router.post("/refresh", responses=_UNAUTHORIZED, dependencies=_TOKEN_RESPONSE)
async def refresh(
    body: RefreshRequest, db: SessionDep, settings: SettingsDep, keys: KeyRingDep
) -> TokenPair:
    """Spend the refresh token for a new pair; a spent token presented again ends the session."""
    try:
        tokens = await service.rotate_refresh_token(db, settings, keys, body.refresh_token)
    except service.InvalidRefreshTokenError:
        raise _bad_refresh_token() from None
    return _pair(tokens)


@router.post("/logout", status_code=204)
async def logout(body: RefreshRequest, db: SessionDep) -> Response:
    await service.logout(db, body.refresh_token)
    return Response(status_code=204)


def _session_out(family: RefreshTokenFamily) -> SessionOut:
    return SessionOut(
        id=family.id,
        created_at=as_utc(family.created_at),
        last_used_at=as_utc(family.last_used_at),
        user_agent=family.user_agent,
        ip=family.ip,
    )


@router.get("/sessions", responses=_UNAUTHORIZED)
async def sessions(user: CurrentUser, db: SessionDep) -> list[SessionOut]:
    """The caller's live sessions (one per login), newest first."""
    return [_session_out(family) for family in await service.live_sessions(db, user.id)]


@router.delete("/sessions/{session_id}", status_code=204, responses=_UNAUTHORIZED)
async def revoke_session(session_id: uuid.UUID, user: CurrentUser, db: SessionDep) -> Response:
    try:
        await service.revoke_session(db, user.id, session_id)
    except service.SessionNotFoundError:
        raise ProblemError(404, "no such session") from None
    return Response(status_code=204)


@users_router.get("/me", responses=_UNAUTHORIZED)
async def me(request: Request, user: CurrentUser) -> CurrentUserOut:
    # The database is looked up rather than injected: one dependency fewer to solve on the
    # API's busiest authenticated endpoint (docs/performance.md).
    entitlements = await entitlements_of(request, database_of(request), user)
    return CurrentUserOut(**user_out(user).model_dump(), entitlements=entitlements)


@admin_router.get("/users", responses={**_UNAUTHORIZED, 403: {"description": "not an admin"}})
async def list_users(
    _: AdminUser,
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=user_pages.MAX_PAGE_SIZE)] = user_pages.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPage:
    """All users, newest first; pass `next_cursor` back as `cursor` for the next page."""
    try:
        users, next_cursor = await user_pages.users_page(db, limit, cursor)
    except user_pages.InvalidCursorError as exc:
        error = {"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}
        raise ProblemError(422, "the request is invalid", extra={"errors": [error]}) from None
    items = [AdminUserOut(**user_out(user).model_dump(), disabled=user.disabled) for user in users]
    return UserPage(items=items, next_cursor=next_cursor)


@jwks_router.get(
    "/.well-known/jwks.json", response_model=dict[str, Any], responses=NOT_MODIFIED_RESPONSE
)
async def jwks(keys: KeyRingDep, request: Request) -> Response:
    """The public keys that verify access tokens (every configured key, newest first).

    Verifiers may cache it for a few minutes: a rotation publishes the new key before it signs.
    """
    return keys.jwks_document.response(request)
