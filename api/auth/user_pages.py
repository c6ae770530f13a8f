"""Keyset pagination of the admin user list: newest first, stable under concurrent sign-ups.

The cursor is opaque to clients (base64url of the last row's creation time and id); a page
never skips or repeats users, however many register while an admin is paging.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.models import User, as_utc

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class InvalidCursorError(ValueError):
    pass


def encode_cursor(user: User) -> str:
    position = [as_utc(user.created_at).isoformat(), str(user.id)]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, user_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created_at)), uuid.UUID(user_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidCursorError("cursor is not one this API returned") from None


async def users_page(
    db: AsyncSession, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    query = select(User).order_by(col(User.created_at).desc(), col(User.id).desc())
    if cursor is not None:
        created_at, user_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(User.created_at) < created_at,
                and_(col(User.created_at) == created_at, col(User.id) < user_id),
            )
        )
    # One row more than asked tells whether another page follows.
    users = list(await db.scalars(query.limit(limit + 1)))
    if len(users) > limit:
        return users[:limit], encode_cursor(users[limit - 1])
    return users, None
