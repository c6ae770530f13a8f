"""Access tokens (RFC 9068 style JWS, ES256) and opaque refresh tokens.

Verification trusts nothing in the token before the signature checks out: the algorithm list
is pinned to ES256, `kid` only selects among configured keys (`jku`/`x5u`/`jwk` headers are
ignored), `typ` must be `at+jwt`, and every claim is required.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from api.auth.keys import KeyRing
from api.auth.models import ROLES, User
from api.settings import Settings

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
ALGORITHM = "ES256"
# `sid` names the session (refresh-token family) the token was issued to: revoking the
# session (logout, password reset or change) refuses its access tokens at once.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "role", "sid"]
# Tolerated clock difference between the servers that sign and those that verify.
LEEWAY_SECONDS = 5
REFRESH_TOKEN_BYTES = 32  # 256 bits
# Access tokens are ES256 JWS of a few hundred bytes; a bearer value longer than this is junk.
MAX_ACCESS_TOKEN_LENGTH = 4096


class InvalidAccessTokenError(Exception):
    """The token must be refused; the reason is for logs, never for the client."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    token_id: str
    expires_at: int


def issue_access_token(keys: KeyRing, settings: Settings, user: User, session_id: uuid.UUID) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user.id),
        "iat": now,
        "exp": now + settings.access_token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "role": user.role,
        "sid": str(session_id),
    }
    signer = keys.signing_key
    return jwt.encode(
        claims,
        signer.private_key,
        algorithm=ALGORITHM,
        headers={"kid": signer.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def _verification_key(keys: KeyRing, token: str) -> Any:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidAccessTokenError(f"malformed header: {exc}") from None
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidAccessTokenError("wrong typ")
    if header.get("alg") != ALGORITHM:
        raise InvalidAccessTokenError("wrong alg")
    kid = header.get("kid")
    key = keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidAccessTokenError("unknown kid")
    return key


def verify_access_token(keys: KeyRing, settings: Settings, token: str) -> AccessClaims:
    if len(token) > MAX_ACCESS_TOKEN_LENGTH:
        # Ours are well under 1 KB: anything this long is refused before it is even decoded.
        raise InvalidAccessTokenError("token too long")
    key = _verification_key(keys, token)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessTokenError(str(exc)) from None
    role, token_id = claims["role"], claims["jti"]
    if role not in ROLES or not isinstance(token_id, str):
        raise InvalidAccessTokenError("bad role or jti")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        session_id = uuid.UUID(str(claims["sid"]))
    except ValueError:
        raise InvalidAccessTokenError("sub or sid is not an id") from None
    return AccessClaims(
        user_id=user_id,
        session_id=session_id,
        role=role,
        token_id=token_id,
        expires_at=claims["exp"],
    )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def hash_refresh_token(token: str) -> str:
    """SHA-256 suffices: the token is 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()
