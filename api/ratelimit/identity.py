"""Who a request counts against: the verified user, or a body field such as the login email.

The limit is decided before the endpoint (and its CurrentUser dependency) runs, so the
bearer token is verified here with the auth module's own verifier. Only a token that
verifies names a user; anything else counts against the client IP, so forged tokens can
neither spend another user's quota nor escape the limit. The verifier remembers results
(api.auth.verified_tokens), so the endpoint's own check of the same token costs no second
signature check.
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

# A login body is tiny; the request context middleware already refuses more than 1 MiB.
_MAX_FIELD_LENGTH = 512
_FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

UserVerifier = Callable[[str], str | None]


def auth_token_verifier(app: FastAPI) -> UserVerifier:
    """The user id of a valid access token of this app, else None."""
    from api.auth.dependencies import token_verifier_for
    from api.auth.tokens import InvalidAccessTokenError

    def verify(token: str) -> str | None:
        try:
            claims = token_verifier_for(app).verify(token)
        except InvalidAccessTokenError:
            return None
        return str(claims.user_id)

    return verify


class UserIdentity:
    def __init__(self, verifier: UserVerifier) -> None:
        self._verify = verifier

    def user_for(self, scope: Scope) -> str | None:
        token = _bearer_token(scope)
        if token is None:
            return None
        try:
            return self._verify(token.decode("latin-1"))
        except Exception:
            # A broken key ring must not turn into 500s here; the endpoint's own auth
            # dependency reports it. Until then the request counts against its IP.
            logger.exception("access token verification failed in the rate limiter")
            return None


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
