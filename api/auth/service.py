"""Accounts and sessions: registration, login, refresh-token rotation, logout, revocation.

Services own their transactions and know nothing of HTTP. A session is a refresh-token
family: each refresh spends the presented token and issues the next one in the family, and a
spent token presented again revokes the whole family (someone holds a copy of it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.emails import InvalidEmailError, normalise_email
from api.auth.keys import KeyRing
from api.auth.models import RefreshToken, RefreshTokenFamily, Role, User, as_utc, utc_now
from api.auth.passwords import (
    burn_verification_time,
    hash_password,
    password_problem,
    verify_password,
)
from api.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from api.observability.metrics import auth_logins_total, auth_refresh_total
from api.settings import Settings
from api.user_cache import commit_user_changes

logger = logging.getLogger("api.auth")


class AuthError(Exception):
    """A refusal the caller turns into a client error."""


class EmailTakenError(AuthError):
    pass


class WeakPasswordError(AuthError):
    pass


class InvalidCredentialsError(AuthError):
    pass


class InvalidRefreshTokenError(AuthError):
    pass


class SessionNotFoundError(AuthError):
    pass


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class ClientInfo:
    """Where a session was started, shown to the user in their session list."""

    user_agent: str | None = None
    ip: str | None = None


async def register_user(
    db: AsyncSession, email: str, password: str, *, role: Role = "user", verified: bool = False
) -> User:
    """A new account; `verified` when an operator vouches for the address (admin bootstrap)."""
    try:
        normalised = normalise_email(email)
    except InvalidEmailError as exc:
        raise AuthError(str(exc)) from None
    problem = password_problem(password)
    if problem is not None:
        raise WeakPasswordError(problem)
    user = User(
        email=normalised,
        password_hash=await hash_password(password),
        role=role,
        email_verified_at=utc_now() if verified else None,
    )
    db.add(user)
    try:
        await db.commit()
    except IntegrityError:
        # The unique constraint decides, so two concurrent registrations cannot both succeed.
        await db.rollback()
        raise EmailTakenError("this email is already registered") from None
    return user


async def user_by_email(db: AsyncSession, email: str) -> User | None:
    try:
        normalised = normalise_email(email)
    except InvalidEmailError:
        return None
    user: User | None = await db.scalar(select(User).where(col(User.email) == normalised))
    return user


async def authenticate(db: AsyncSession, email: str, password: str) -> User:
    """The user with these credentials; every kind of failure looks and takes the same.

    The lookup's transaction ends before the password is checked: argon2 may wait for a
    hashing slot, and a burst of logins holding pooled connections meanwhile would starve
    every other request of the database (the user stays loaded: expire_on_commit=False).
    """
    user = await user_by_email(db, email)
    await db.commit()
    if user is None:
        await burn_verification_time(password)
        auth_logins_total.labels(result="failure").inc()
        raise InvalidCredentialsError()
    valid, updated_hash = await verify_password(password, user.password_hash)
    if not valid or user.disabled:
        auth_logins_total.labels(result="failure").inc()
        raise InvalidCredentialsError()
    if updated_hash is not None:
        # Hashing parameters changed since this hash was made: upgrade it while we have the
        # plain password.
        user.password_hash = updated_hash
        await db.commit()
    auth_logins_total.labels(result="success").inc()
    return user


def _issue(
    keys: KeyRing, settings: Settings, user: User, session_id: uuid.UUID, refresh_token: str
) -> IssuedTokens:
    return IssuedTokens(
        access_token=issue_access_token(keys, settings, user, session_id),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
    )


async def start_session(
    db: AsyncSession, settings: Settings, keys: KeyRing, user: User, client: ClientInfo
) -> IssuedTokens:
    now = utc_now()
    family = RefreshTokenFamily(
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        user_agent=client.user_agent,
        ip=client.ip,
    )
    db.add(family)
    await db.flush()  # the family row must exist before its first token references it
    refresh_token = new_refresh_token()
    db.add(
        RefreshToken(
            family_id=family.id, token_hash=hash_refresh_token(refresh_token), created_at=now
        )
    )
    await db.commit()
    return _issue(keys, settings, user, family.id, refresh_token)


async def _revoke_families(
    db: AsyncSession, *conditions: ColumnElement[bool], now: datetime
) -> int:
    result = await db.execute(
        update(RefreshTokenFamily)
        .where(col(RefreshTokenFamily.revoked_at).is_(None), *conditions)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[object], result).rowcount


async def _reuse_detected(
    db: AsyncSession, family_id: uuid.UUID, user_id: uuid.UUID
) -> InvalidRefreshTokenError:
    await db.rollback()
    await _revoke_families(db, col(RefreshTokenFamily.id) == family_id, now=utc_now())
    await commit_user_changes(db, user_id)
    auth_refresh_total.labels(result="reuse_detected").inc()
    logger.warning("refresh token reuse: session revoked", extra={"family_id": str(family_id)})
    return InvalidRefreshTokenError()


async def rotate_refresh_token(
    db: AsyncSession, settings: Settings, keys: KeyRing, presented: str
) -> IssuedTokens:
    now = utc_now()
    row = (
        await db.execute(
            select(RefreshToken, RefreshTokenFamily, User)
            .join(RefreshTokenFamily, col(RefreshToken.family_id) == col(RefreshTokenFamily.id))
            .join(User, col(RefreshTokenFamily.user_id) == col(User.id))
            .where(col(RefreshToken.token_hash) == hash_refresh_token(presented))
        )
    ).first()
    if row is None:
        auth_refresh_total.labels(result="invalid").inc()
        raise InvalidRefreshTokenError()
    token, family, user = row
    if token.used_at is not None:
        raise await _reuse_detected(db, family.id, user.id)
    if family.revoked_at is not None or as_utc(family.expires_at) <= now or user.disabled:
        auth_refresh_total.labels(result="invalid").inc()
        raise InvalidRefreshTokenError()
    # Spend the token only if nobody else has: of two concurrent refreshes, the database lets
    # exactly one update the row; the other sees no row and is treated as reuse.
    spent = await db.execute(
        update(RefreshToken)
        .where(col(RefreshToken.id) == token.id, col(RefreshToken.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[object], spent).rowcount != 1:
        raise await _reuse_detected(db, family.id, user.id)
    next_token = new_refresh_token()
    db.add(
        RefreshToken(family_id=family.id, token_hash=hash_refresh_token(next_token), created_at=now)
    )
    await db.execute(
        update(RefreshTokenFamily)
        .where(col(RefreshTokenFamily.id) == family.id)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    auth_refresh_total.labels(result="rotated").inc()
    return _issue(keys, settings, user, family.id, next_token)


async def logout(db: AsyncSession, presented: str) -> None:
    """Revoke the session the refresh token belongs to; unknown tokens are ignored (RFC 7009)."""
    row = (
        await db.execute(
            select(col(RefreshTokenFamily.id), col(RefreshTokenFamily.user_id))
            .join(RefreshToken, col(RefreshToken.family_id) == col(RefreshTokenFamily.id))
            .where(col(RefreshToken.token_hash) == hash_refresh_token(presented))
        )
    ).first()
    if row is not None:
        family_id, user_id = row
        await _revoke_families(db, col(RefreshTokenFamily.id) == family_id, now=utc_now())
        await commit_user_changes(db, user_id)


async def live_sessions(db: AsyncSession, user_id: uuid.UUID) -> list[RefreshTokenFamily]:
    result = await db.scalars(
        select(RefreshTokenFamily)
        .where(
            col(RefreshTokenFamily.user_id) == user_id,
            col(RefreshTokenFamily.revoked_at).is_(None),
            col(RefreshTokenFamily.expires_at) > utc_now(),
        )
        .order_by(col(RefreshTokenFamily.created_at).desc())
    )
    return list(result)


async def revoke_session(db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Revoke one of the user's own live sessions; anyone else's is indistinguishable from none."""
    revoked = await _revoke_families(
        db,
        col(RefreshTokenFamily.id) == session_id,
        col(RefreshTokenFamily.user_id) == user_id,
        col(RefreshTokenFamily.expires_at) > utc_now(),
        now=utc_now(),
    )
    await commit_user_changes(db, user_id)
    if revoked == 0:
        raise SessionNotFoundError()


async def revoke_user_sessions(
    db: AsyncSession, user_id: uuid.UUID, *, keep: uuid.UUID | None = None
) -> int:
    """Revoke the user's sessions (all, or all but `keep`); the caller commits with
    `commit_user_changes`, so cached sessions end with the commit."""
    conditions = [col(RefreshTokenFamily.user_id) == user_id]
    if keep is not None:
        conditions.append(col(RefreshTokenFamily.id) != keep)
    return await _revoke_families(db, *conditions, now=utc_now())


async def disable_user(db: AsyncSession, user_id: uuid.UUID) -> bool:
    """Lock the user out: sessions are revoked now, access tokens fail at their next request."""
    result = await db.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(disabled=True)
        .execution_options(synchronize_session=False)
    )
    await _revoke_families(db, col(RefreshTokenFamily.user_id) == user_id, now=utc_now())
    await commit_user_changes(db, user_id)
    return cast(CursorResult[object], result).rowcount == 1


async def ensure_admin(db: AsyncSession, email: str, password: str) -> bool:
    """Create this admin unless a user with the email exists; True when one was created."""
    if await user_by_email(db, email) is not None:
        return False
    try:
        await register_user(db, email, password, role="admin", verified=True)
    except EmailTakenError:
        return False  # another process bootstrapping at the same time got there first
    return True


async def set_role(db: AsyncSession, email: str, role: Role) -> bool:
    """Give an existing user a role; False when no user has this email."""
    user = await user_by_email(db, email)
    if user is None:
        return False
    user.role = role
    await commit_user_changes(db, user.id)
    return True
