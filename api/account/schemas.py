"""Request and response bodies of the account endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.account.tokens import MAX_TOKEN_LENGTH
from api.auth.models import EMAIL_MAX_LENGTH
from api.auth.passwords import MAX_PASSWORD_LENGTH
from api.auth.schemas import NewPassword


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class PasswordResetRequest(BaseModel):
    """Any string up to the size limit: a malformed address is just an unknown account."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=EMAIL_MAX_LENGTH + 16, examples=["ada@example.com"])


class PasswordResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    new_password: NewPassword


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: NewPassword


class Accepted(BaseModel):
    detail: str
