"""`VerifiedUser`: for endpoints only users with a verified email address may use."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from api.auth.dependencies import CurrentUser
from api.auth.models import User
from api.errors import ProblemError


def email_not_verified() -> ProblemError:
    return ProblemError(
        403,
        "verify your email address first: follow the link we sent you",
        slug="email-not-verified",
    )


async def get_verified_user(user: CurrentUser) -> User:
    if user.email_verified_at is None:
        raise email_not_verified()
    return user


VerifiedUser = Annotated[User, Depends(get_verified_user)]


async def get_current_session_id(request: Request, _: CurrentUser) -> uuid.UUID:
    """The session (refresh-token family) the caller's access token belongs to."""
    session_id: uuid.UUID = request.state.session_id
    return session_id


CurrentSessionId = Annotated[uuid.UUID, Depends(get_current_session_id)]
