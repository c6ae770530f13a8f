"""Single-use account tokens (email verification, password reset), stored only as hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.auth.models import utc_now

Purpose = Literal["verify_email", "password_reset"]
PURPOSES: tuple[Purpose, ...] = ("verify_email", "password_reset")


class AccountToken(SQLModel, table=True):
    """A link sent by email: the SHA-256 of its token, what it is for, and when it ends."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        sa.CheckConstraint("purpose IN ('verify_email', 'password_reset')", name="purpose"),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    purpose: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    # Set when the token is spent, or superseded (verified anyway, password reset by another).
    used_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
