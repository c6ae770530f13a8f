"""Issuing and spending single-use account tokens.

A token is 256 random bits sent in a link; only its SHA-256 is stored, so a database leak
yields no usable link. Spending is a conditional UPDATE: of two concurrent uses exactly one
wins, and an expired, used or superseded token never works.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.account.models import AccountToken, Purpose
from api.auth.models import User, utc_now
from api.auth.tokens import hash_refresh_token, new_refresh_token

# Longer than any token we issue (43 characters), short enough to refuse junk before hashing.
MAX_TOKEN_LENGTH = 128


class InvalidAccountTokenError(Exception):
    """Unknown, expired, used or superseded: one answer for every case."""


async def issue_token(
    db: AsyncSession, user_id: uuid.UUID, purpose: Purpose, ttl_seconds: int
) -> str:
    """A new token for the user (the caller commits)."""
    token = new_refresh_token()
    now = utc_now()
    db.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_refresh_token(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    return token


async def token_user(db: AsyncSession, token: str, purpose: Purpose) -> User:
    """The user a live token belongs to, without spending it."""
    now = utc_now()
    user: User | None = await db.scalar(
        select(User)
        .join(AccountToken, col(AccountToken.user_id) == col(User.id))
        .where(
            col(AccountToken.token_hash) == hash_refresh_token(token),
            col(AccountToken.purpose) == purpose,
            col(AccountToken.used_at).is_(None),
            col(AccountToken.expires_at) > now,
            col(User.disabled).is_(False),
        )
    )
    if user is None:
        raise InvalidAccountTokenError()
    return user


async def spend_token(db: AsyncSession, token: str, purpose: Purpose, user_id: uuid.UUID) -> None:
    """Mark the token used, or raise if someone else spent it first (the caller commits)."""
    spent = await db.execute(
        update(AccountToken)
        .where(
            col(AccountToken.token_hash) == hash_refresh_token(token),
            col(AccountToken.purpose) == purpose,
            col(AccountToken.user_id) == user_id,
            col(AccountToken.used_at).is_(None),
            col(AccountToken.expires_at) > utc_now(),
        )
        .values(used_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[object], spent).rowcount != 1:
        raise InvalidAccountTokenError()


async def retire_tokens(db: AsyncSession, user_id: uuid.UUID, purpose: Purpose) -> None:
    """Every outstanding token of this purpose stops working (the caller commits)."""
    await db.execute(
        update(AccountToken)
        .where(
            col(AccountToken.user_id) == user_id,
            col(AccountToken.purpose) == purpose,
            col(AccountToken.used_at).is_(None),
        )
        .values(used_at=utc_now())
        .execution_options(synchronize_session=False)
    )


async def latest_token_at(
    db: AsyncSession, user_id: uuid.UUID, purpose: Purpose
) -> datetime | None:
    created: datetime | None = await db.scalar(
        select(col(AccountToken.created_at))
        .where(col(AccountToken.user_id) == user_id, col(AccountToken.purpose) == purpose)
        .order_by(col(AccountToken.created_at).desc())
        .limit(1)
    )
    return created
