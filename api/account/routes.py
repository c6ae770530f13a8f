"""HTTP endpoints of the account lifecycle: thin wrappers around api.account.service."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.account import service
from api.account.dependencies import CurrentSessionId
from api.account.schemas import (
    Accepted,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    TokenRequest,
)
from api.auth.dependencies import CurrentUser, SettingsDep
from api.auth.routes import user_out
from api.auth.schemas import UserOut
from api.db import DatabaseDep, SessionDep
from api.email.setup import EmailSenderDep
from api.errors import ProblemError
from api.problem_docs import problem_responses

router = APIRouter(prefix="/v1/auth", tags=["account"])

_INVALID = "the token is invalid, expired or already used"
_LIMITED = "too many requests (rate-limit policy named in the body)"
_INVALID_BODY = "the body is malformed, or the new password is refused by the password policy"
_UNAUTHENTICATED = "the access token is missing, invalid or expired"
RESET_ACCEPTED = Accepted(
    detail="if an account uses this address, a link to reset its password is on its way"
)


def _invalid_token() -> ProblemError:
    return ProblemError(400, _INVALID, slug="invalid-token")


@router.post(
    "/verify-email",
    responses=problem_responses(_400=_INVALID, _422="the body is malformed", _429=_LIMITED),
)
async def verify_email(body: TokenRequest, db: SessionDep) -> UserOut:
    """Mark the address verified with the token from the verification link (works once)."""
    try:
        user = await service.verify_email(db, body.token)
    except service.InvalidAccountTokenError:
        raise _invalid_token() from None
    return user_out(user)


@router.post(
    "/verify-email/resend",
    status_code=202,
    responses=problem_responses(
        _401=_UNAUTHENTICATED, _409="the address is already verified", _429=_LIMITED
    ),
)
async def resend_verification(
    user: CurrentUser, db: SessionDep, settings: SettingsDep, sender: EmailSenderDep
) -> Accepted:
    """Send a new verification link to the caller's address."""
    try:
        await service.resend_verification(db, settings, sender, user)
    except service.AlreadyVerifiedError as exc:
        raise ProblemError(409, str(exc), slug="already-verified") from None
    return Accepted(detail="a new verification link is on its way")


@router.post(
    "/password-reset",
    status_code=202,
    responses=problem_responses(_422="the body is malformed", _429=_LIMITED),
)
async def request_password_reset(
    body: PasswordResetRequest,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    sender: EmailSenderDep,
) -> Accepted:
    """Email a reset link if an account uses this address. The answer, and the work done
    before it, are the same either way: the lookup happens after the response."""
    limiter = request.app.state.rate_limiter
    job = service.password_reset_job(database, settings, limiter, body.email)
    sender.submit("password_reset", job)
    return RESET_ACCEPTED


@router.post(
    "/password-reset/confirm",
    status_code=204,
    responses=problem_responses(_400=_INVALID, _422=_INVALID_BODY, _429=_LIMITED),
)
async def confirm_password_reset(
    body: PasswordResetConfirm, db: SessionDep, settings: SettingsDep, sender: EmailSenderDep
) -> Response:
    """Set a new password with the token from the reset link; every session is signed out."""
    try:
        await service.confirm_password_reset(db, settings, sender, body.token, body.new_password)
    except service.InvalidAccountTokenError:
        raise _invalid_token() from None
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    responses=problem_responses(
        _401=_UNAUTHENTICATED,
        _403="the current password is incorrect",
        _422=_INVALID_BODY,
        _429=_LIMITED,
    ),
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    session_id: CurrentSessionId,
    db: SessionDep,
    settings: SettingsDep,
    sender: EmailSenderDep,
) -> Response:
    """Change the caller's password; this session stays signed in, every other one ends."""
    try:
        await service.change_password(
            db, settings, sender, user, session_id, body.current_password, body.new_password
        )
    except service.IncorrectPasswordError as exc:
        raise ProblemError(403, str(exc), slug="incorrect-password") from None
    except service.UnchangedPasswordError as exc:
        error = {"loc": ["body", "new_password"], "msg": str(exc), "type": "value_error"}
        raise ProblemError(422, "the request is invalid", extra={"errors": [error]}) from None
    return Response(status_code=204)
