"""Auth tables: users, refresh-token families (one per login = one session) and tokens.

Column types are explicit SQLAlchemy types so that migration 0002 can spell them exactly and
the drift test (autogenerate vs models) stays empty on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")

EMAIL_MAX_LENGTH = 320  # RFC 5321: 64 (local part) + 1 + 255 (domain)
USER_AGENT_MAX_LENGTH = 256
IP_MAX_LENGTH = 45  # the longest textual IPv6 address (IPv4-mapped)


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC, so say so."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _timestamp(*, nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    # Normalised (see api.auth.emails) before it is stored, so uniqueness is case-insensitive
    # on the domain part.
    email: str = Field(
        sa_column=sa.Column(sa.String(EMAIL_MAX_LENGTH), nullable=False, unique=True)
    )
    password_hash: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    role: str = Field(default="user", sa_column=sa.Column(sa.String(16), nullable=False))
    disabled: bool = Field(default=False, sa_column=sa.Column(sa.Boolean(), nullable=False))
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    # Set when the user proved they read mail at this address (a verification or reset link).
    email_verified_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class RefreshTokenFamily(SQLModel, table=True):
    """One login session: every refresh token issued from one login belongs to it."""

    __tablename__ = "refresh_token_families"

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    last_used_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    # Absolute lifetime: refreshing never extends a session past this.
    expires_at: datetime = Field(sa_column=_timestamp())
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    user_agent: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(USER_AGENT_MAX_LENGTH), nullable=True)
    )
    ip: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(IP_MAX_LENGTH), nullable=True)
    )


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored only as the SHA-256 of its value; spent once `used_at` is set."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    family_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(),
            sa.ForeignKey("refresh_token_families.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utc_now, sa_column=_timestamp())
    used_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


def user_entry(user: User) -> dict[str, Any]:
    """What the user cache keeps of an enabled user: never the password hash."""
    verified = user.email_verified_at
    return {
        "id": str(user.id),
        "email": user.email,
        "role": user.role,
        "created_at": as_utc(user.created_at).isoformat(),
        "email_verified_at": as_utc(verified).isoformat() if verified is not None else None,
    }


def cached_user(entry: dict[str, Any]) -> User:
    """A detached user rebuilt from the cache. It has no password hash (an empty one matches
    no password): code that checks a password loads the hash from the database."""
    verified = entry["email_verified_at"]
    # model_construct: the entry was validated when it was cached, and validating it again
    # cost more than the rest of a cached lookup. The user is detached either way (a cached
    # user is never added to a session).
    return User.model_construct(
        id=uuid.UUID(entry["id"]),
        email=entry["email"],
        password_hash="",
        role=entry["role"],
        disabled=False,
        created_at=datetime.fromisoformat(entry["created_at"]),
        email_verified_at=datetime.fromisoformat(verified) if verified is not None else None,
    )
