"""Email verification, password reset and password change.

Services own their transactions and know nothing of HTTP; messages go to the background
sender. Password hashing never runs while a database connection is held: the transaction is
ended first (argon2 takes tens of milliseconds, a pool slot is scarcer than that).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.account.messages import (
    password_changed_email,
    password_reset_email,
    verification_email,
)
from api.account.tokens import (
    InvalidAccountTokenError,
    issue_token,
    latest_token_at,
    retire_tokens,
    spend_token,
    token_user,
)
from api.auth.emails import InvalidEmailError, normalise_email
from api.auth.models import User, as_utc, utc_now
from api.auth.passwords import hash_password, verify_password
from api.auth.service import revoke_user_sessions, user_by_email
from api.db import Database
from api.email.message import OutgoingEmail
from api.email.sender import EmailSender, Prepare
from api.ratelimit.identity import field_digest
from api.ratelimit.limiter import RateLimiter
from api.settings import Settings
from api.user_cache import commit_user_changes

logger = logging.getLogger("api.account")

# The per-address limit on reset emails, applied by the background job (see below).
RESET_EMAIL_POLICY = "password-reset-email"
# A refused login of an unverified user sends a new link at most this often.
LOGIN_RESEND_INTERVAL = timedelta(minutes=10)

__all__ = ["InvalidAccountTokenError"]


class AccountError(Exception):
    pass


class AlreadyVerifiedError(AccountError):
    pass


class IncorrectPasswordError(AccountError):
    pass


class UnchangedPasswordError(AccountError):
    pass


async def send_verification(
    db: AsyncSession, settings: Settings, sender: EmailSender, user: User
) -> None:
    token = await issue_token(db, user.id, "verify_email", settings.email_verification_ttl_seconds)
    await db.commit()
    sender.send(verification_email(settings, user.email, token))


async def resend_verification(
    db: AsyncSession, settings: Settings, sender: EmailSender, user: User
) -> None:
    if user.email_verified_at is not None:
        raise AlreadyVerifiedError("this email address is already verified")
    await send_verification(db, settings, sender, user)


async def remind_unverified(
    db: AsyncSession, settings: Settings, sender: EmailSender, user: User
) -> None:
    """A login refused for want of verification sends a new link, unless one went out lately.

    With REQUIRE_VERIFIED_EMAIL an unverified user holds no access token, so this, not the
    bearer-only resend endpoint, is how they get a fresh link.
    """
    latest = await latest_token_at(db, user.id, "verify_email")
    if latest is None or as_utc(latest) <= utc_now() - LOGIN_RESEND_INTERVAL:
        await send_verification(db, settings, sender, user)


async def verify_email(db: AsyncSession, token: str) -> User:
    user = await token_user(db, token, "verify_email")
    await spend_token(db, token, "verify_email", user.id)
    await retire_tokens(db, user.id, "verify_email")
    if user.email_verified_at is None:
        user.email_verified_at = utc_now()
    await commit_user_changes(db, user.id)
    return user


def password_reset_job(
    database: Database, settings: Settings, limiter: RateLimiter, email: str
) -> Prepare:
    """The whole of a reset request, run by the background sender after the 202 is sent.

    The request itself only queues this job, so it does the same work, in the same time,
    whether or not the account exists; the lookup, the per-address limit and the token
    happen here, out of the client's sight.
    """

    async def prepare() -> OutgoingEmail | None:
        try:
            address = normalise_email(email)
        except InvalidEmailError:
            return None
        policy = limiter.policies.policies.get(RESET_EMAIL_POLICY)
        if policy is not None:
            decision = await limiter.decide(policy, f"body:{field_digest(address)}")
            if not decision.allowed:
                logger.warning("password reset not sent: per-address limit reached")
                return None
        async with database.sessions() as db:
            user = await user_by_email(db, address)
            if user is None or user.disabled:
                return None
            ttl = settings.password_reset_ttl_seconds
            token = await issue_token(db, user.id, "password_reset", ttl)
            await db.commit()
        return password_reset_email(settings, user.email, token)

    return prepare


async def _set_password(
    db: AsyncSession, user_id: uuid.UUID, password_hash: str, *, verified: bool
) -> None:
    values: dict[str, object] = {"password_hash": password_hash}
    if verified:  # the reset link reached this mailbox: the address is proven
        values["email_verified_at"] = func.coalesce(col(User.email_verified_at), utc_now())
    await db.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def confirm_password_reset(
    db: AsyncSession, settings: Settings, sender: EmailSender, token: str, new_password: str
) -> None:
    """Set the password, end every session, retire every other reset link, send a notice."""
    user = await token_user(db, token, "password_reset")
    user_id, address = user.id, user.email
    await db.commit()  # release the connection while hashing
    password_hash = await hash_password(new_password)
    try:
        await spend_token(db, token, "password_reset", user_id)
    except InvalidAccountTokenError:
        await db.rollback()
        raise
    await retire_tokens(db, user_id, "password_reset")
    await retire_tokens(db, user_id, "verify_email")
    await _set_password(db, user_id, password_hash, verified=True)
    await revoke_user_sessions(db, user_id)
    await commit_user_changes(db, user_id)
    changed_at = utc_now()
    sender.send(password_changed_email(settings, address, changed_at, signed_out_everywhere=True))


async def change_password(
    db: AsyncSession,
    settings: Settings,
    sender: EmailSender,
    user: User,
    session_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> None:
    """Set a new password; the current session stays, every other one ends."""
    user_id, address = user.id, user.email
    # Loaded here: the authenticated user may come from the cache, which holds no hash.
    stored_hash = await db.scalar(select(col(User.password_hash)).where(col(User.id) == user_id))
    await db.commit()  # release the connection while hashing
    if stored_hash is None:
        raise IncorrectPasswordError("the current password is incorrect")
    valid, _ = await verify_password(current_password, stored_hash)
    if not valid:
        raise IncorrectPasswordError("the current password is incorrect")
    if new_password == current_password:
        raise UnchangedPasswordError("the new password must differ from the current one")
    password_hash = await hash_password(new_password)
    await _set_password(db, user_id, password_hash, verified=False)
    await revoke_user_sessions(db, user_id, keep=session_id)
    await retire_tokens(db, user_id, "password_reset")  # links sent earlier are stale now
    await commit_user_changes(db, user_id)
    changed_at = utc_now()
    sender.send(password_changed_email(settings, address, changed_at, signed_out_everywhere=False))
