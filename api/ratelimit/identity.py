"""Who a request counts against: the verified user, or a body field such as the login email.

The limit is decided before the endpoint (and its CurrentUser dependency) runs, so the
bearer token is verified here with the auth module's own verifier. Only a token that
verifies names a user; anything else counts against the client IP, so forged tokens can
neither spend another user's quota nor escape the limit. Verification results are remembered
by token digest within a byte budget: the signature check then costs once per token, not
once per request, and no client can make the cache hold more than its budget.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from fastapi import FastAPI
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from api.auth.emails import InvalidEmailError, normalise_email
from api.auth.tokens import MAX_ACCESS_TOKEN_LENGTH
from api.json_body import parse_json

logger = logging.getLogger("api.ratelimit")

# What the verification caches may hold: a few MB per worker, whatever clients send.
_VALID_CACHE_BYTES = 4 * 1024 * 1024
_REFUSED_CACHE_BYTES = 1024 * 1024
_ENTRY_BYTES = 340
# A login body is tiny; the request context middleware already refuses more than 1 MiB.
_MAX_FIELD_LENGTH = 512
_FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

UserVerifier = Callable[[str], tuple[str, int] | None]


def auth_token_verifier(app: FastAPI) -> UserVerifier:
    """(user id, expiry) for a valid access token of this app, else None."""
    from api.auth.dependencies import keyring_for
    from api.auth.tokens import InvalidAccessTokenError, verify_access_token

    def verify(token: str) -> tuple[str, int] | None:
        try:
            claims = verify_access_token(keyring_for(app), app.state.settings, token)
        except InvalidAccessTokenError:
            return None
        return str(claims.user_id), int(claims.expires_at)

    return verify


_Verified = tuple[str, int] | None
# Compared by identity: "not cached" (None is a cached refusal).
_MISSING: _Verified = ("", 0)


class _DigestCache:
    """Verification results by token digest, within a byte budget, oldest dropped first.

    Keys are SHA-256 digests, never the tokens, so an entry costs the same (about 300 bytes
    measured: key, value and the dict's share) whatever a client sends. SHA-256 rather than
    BLAKE2: CPUs hash it in hardware, and this runs on every authenticated request.
    """

    def __init__(self, budget_bytes: int) -> None:
        self._capacity = max(1, budget_bytes // _ENTRY_BYTES)
        self.entries: dict[bytes, _Verified] = {}

    def put(self, digest: bytes, value: _Verified) -> None:
        if len(self.entries) >= self._capacity:
            del self.entries[next(iter(self.entries))]
        self.entries[digest] = value


class UserIdentity:
    def __init__(self, verifier: UserVerifier, wall_clock: Callable[[], float]) -> None:
        self._verify = verifier
        self._wall_clock = wall_clock
        # Refused tokens are remembered too, so replaying junk costs no signature checks; in a
        # cache of their own, so a flood of junk cannot push out the users' valid tokens.
        self._valid = _DigestCache(_VALID_CACHE_BYTES)
        self._refused = _DigestCache(_REFUSED_CACHE_BYTES)

    def user_for(self, scope: Scope) -> str | None:
        token = _bearer_token(scope)
        if token is None:
            return None
        digest = hashlib.sha256(token).digest()
        cached = self._valid.entries.get(digest, _MISSING)
        if cached is _MISSING:
            cached = self._refused.entries.get(digest, _MISSING)
            if cached is _MISSING:
                cached = self._verify_once(digest, token)
        if cached is None or cached[1] <= self._wall_clock():
            return None
        return cached[0]

    def _verify_once(self, digest: bytes, token: bytes) -> _Verified:
        try:
            result = self._verify(token.decode("latin-1"))
        except Exception:
            # A broken key ring must not turn into 500s here; the endpoint's own auth
            # dependency reports it. Until then the request counts against its IP.
            logger.exception("access token verification failed in the rate limiter")
            return None
        (self._valid if result is not None else self._refused).put(digest, result)
        return result


_BEARER = b"bearer "


def _bearer_token(scope: Scope) -> bytes | None:
    """The bearer token, or None: absent, another scheme, or too long to be one of ours.

    An oversized credential is neither verified nor cached; the endpoint answers it 401.
    """
    for name, value in scope["headers"]:
        if name == b"authorization":
            if len(value) > MAX_ACCESS_TOKEN_LENGTH + len(_BEARER):
                return None
            if value[:7].lower() != _BEARER:
                return None
            token: bytes = value[7:].strip()
            return token or None
    return None


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            text: str = value.decode("latin-1")
            return text.partition(";")[0].strip().lower()
    return ""


async def read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands the same messages to the app."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return b"".join(chunks), replay


class AmbiguousIdentityError(ValueError):
    """The body names the identity more than once, so the limiter and the endpoint could
    disagree on whom the request is about: it is refused instead."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} appears more than once")
        self.field = field


async def body_field(scope: Scope, body: bytes, fields: tuple[str, ...]) -> str:
    """A digest of the identity in the first of `fields` of a JSON or form body ('' if absent).

    The body is parsed by the same code as the endpoint's (Starlette's form parser, JSON), and
    the value goes through the very function login uses (`normalise_email`: NFC, IDNA,
    case), so every spelling of one account shares one limit; values that are no address at
    all reach no account and are only trimmed and lower-cased. Hashed so that no email
    address is stored in Redis. Raises AmbiguousIdentityError when the body holds more than
    one of `fields`, or one of them twice.
    """
    value = await _identity_field(scope, body, fields)
    return field_digest(value) if value else ""


def field_digest(value: str) -> str:
    """The limiter's key for an identity such as an email address (normalised, hashed)."""
    try:
        normalised = normalise_email(value)
    except InvalidEmailError:
        normalised = value.strip().lower()[:_MAX_FIELD_LENGTH]
    return hashlib.blake2b(normalised.encode(), digest_size=12).hexdigest()


async def _identity_field(scope: Scope, body: bytes, fields: tuple[str, ...]) -> str | None:
    if not body:
        return None
    if _content_type(scope) in _FORM_CONTENT_TYPES:
        try:
            items = await _form_items(scope, body)
        # Request.form() wraps a multipart parse failure (no boundary, ...) in an HTTPException.
        except (HTTPException, MultiPartException, UnicodeDecodeError, ValueError):
            return None  # the endpoint refuses the body itself
        values = [(name, value) for name, value in items if name in fields]
    else:
        try:
            document = parse_json(body)
        except ValueError:  # the endpoint answers 4xx itself
            return None
        if not isinstance(document, dict):
            return None
        values = [(name, document[name]) for name in fields if name in document]
    if len(values) > 1:
        raise AmbiguousIdentityError(values[1][0])
    if not values or not isinstance(values[0][1], str):
        return None
    return values[0][1]


async def _form_items(scope: Scope, body: bytes) -> list[tuple[str, str | UploadFile]]:
    """The form exactly as the endpoint's `request.form()` will see it."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(scope, receive).form()
    try:
        return form.multi_items()
    finally:
        await form.close()
