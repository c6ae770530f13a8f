"""The remembering access-token verifier: a token verified once is answered from memory,
but never past its expiry, and a refused token stays refused."""

from __future__ import annotations

import time
import uuid

import pytest

from api.auth.keys import parse_private_keys
from api.auth.models import User
from api.auth.tokens import LEEWAY_SECONDS, InvalidAccessTokenError, issue_access_token
from api.auth.verified_tokens import DigestCache, TokenVerifier
from tests.api.auth_helpers import NEWEST_KEY_PEM, PREVIOUS_KEY_PEM, keyed_settings

KEYS = parse_private_keys(NEWEST_KEY_PEM)
SETTINGS = keyed_settings("sqlite+aiosqlite:///:memory:")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _token() -> tuple[str, User, uuid.UUID]:
    user = User(id=uuid.uuid4(), email="someone@example.com", password_hash="", role="user")
    session_id = uuid.uuid4()
    return issue_access_token(KEYS, SETTINGS, user, session_id), user, session_id


def test_a_remembered_token_still_expires_on_time() -> None:
    clock = Clock()
    verifier = TokenVerifier(KEYS, SETTINGS, clock)
    token, user, session_id = _token()

    first, again = verifier.verify(token), verifier.verify(token)
    assert (first.user_id, first.session_id) == (user.id, session_id)
    assert again == first

    clock.now = first.expires_at + LEEWAY_SECONDS - 1
    assert verifier.verify(token) == first
    clock.now = first.expires_at + LEEWAY_SECONDS
    with pytest.raises(InvalidAccessTokenError):
        verifier.verify(token)


def test_a_refused_token_stays_refused_and_a_tampered_one_is_not_taken_for_it() -> None:
    verifier = TokenVerifier(KEYS, SETTINGS)
    token, _, _ = _token()
    assert verifier.verify(token)  # remembered as valid
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}AA"

    for _ in range(2):
        with pytest.raises(InvalidAccessTokenError):
            verifier.verify(tampered)
    # A token signed by a key the app does not hold, even for the same claims.
    foreign = issue_access_token(parse_private_keys(PREVIOUS_KEY_PEM), SETTINGS, *_token()[1:])
    with pytest.raises(InvalidAccessTokenError):
        TokenVerifier(KEYS, SETTINGS).verify(foreign)


def test_the_cache_holds_its_budget_whatever_clients_send() -> None:
    cache: DigestCache[int] = DigestCache(budget_bytes=4000)
    for n in range(1000):
        cache.put(n.to_bytes(32, "big"), n)
    assert cache.get((0).to_bytes(32, "big")) is None  # the oldest went first
    assert cache.get((999).to_bytes(32, "big")) == 999
    held = sum(cache.get(n.to_bytes(32, "big")) is not None for n in range(1000))
    assert held == 10
