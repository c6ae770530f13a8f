"""Request and response bodies of the auth endpoints (docs/api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from api.auth.emails import mixed_script_problem, normalise_email
from api.auth.models import EMAIL_MAX_LENGTH, Role
from api.auth.passwords import MAX_PASSWORD_LENGTH, password_problem
from api.settings import MIN_PASSWORD_LENGTH

# Long enough for any token we issue, short enough to refuse junk before hashing it.
MAX_REFRESH_TOKEN_LENGTH = 256


def _acceptable(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password


# A password being set (registration, reset, change): the policy of api.auth.passwords.
# The length limits are in the schema (clients see them); _acceptable adds the rest.
NewPassword = Annotated[
    str,
    Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    AfterValidator(_acceptable),
]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # normalise_email decides; `format` tells clients (and schema-driven tests) what it takes.
    email: str = Field(
        max_length=EMAIL_MAX_LENGTH + 16,
        examples=["ada@example.com"],
        json_schema_extra={"format": "email"},
    )
    password: NewPassword

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        normalised = normalise_email(value)
        problem = mixed_script_problem(normalised)
        if problem is not None:
            raise ValueError(problem)
        return normalised


class LoginRequest(BaseModel):
    """Credentials are not validated beyond size: a malformed email is just a failed login."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=EMAIL_MAX_LENGTH + 16)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="seconds until the access token expires")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    created_at: datetime
    email_verified: bool = Field(description="the user followed a link sent to this address")


class CurrentUserOut(UserOut):
    entitlements: list[str] = Field(
        description="what the user's subscription grants now (see GET /v1/billing/subscription)"
    )


class AdminUserOut(UserOut):
    disabled: bool


class UserPage(BaseModel):
    items: list[AdminUserOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
