"""Access-token verification with memory, shared by the rate limiter and `CurrentUser`.

A client sends the same access token on every request of its lifetime, and checking an
ES256 signature costs more than the rest of an authenticated request together; both the
limiter (which keys on the verified user) and the auth dependency verify it. Results are
remembered by token digest within a byte budget, so the signature check costs once per
token and process, not twice per request, and no client can make the cache hold more than
its budget. Refusals are remembered apart, so a flood of junk cannot push out the users'
valid tokens. A remembered token still expires on time: its `exp` is checked on every use.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from api.auth.keys import KeyRing
from api.auth.tokens import (
    LEEWAY_SECONDS,
    MAX_ACCESS_TOKEN_LENGTH,
    AccessClaims,
    InvalidAccessTokenError,
    verify_access_token,
)
from api.settings import Settings

# What the caches may hold: a few MB per worker, whatever clients send.
VALID_CACHE_BYTES = 4 * 1024 * 1024
REFUSED_CACHE_BYTES = 1024 * 1024
# Measured: the digest key, the value and the dict's share of one entry.
_ENTRY_BYTES = 400

V = TypeVar("V")


class DigestCache(Generic[V]):
    """Values by SHA-256 digest, within a byte budget, oldest dropped first.

    Keys are digests, never the tokens, so an entry costs the same whatever a client sends.
    SHA-256 rather than BLAKE2: CPUs hash it in hardware, and this runs on every request.
    """

    def __init__(self, budget_bytes: int) -> None:
        self._capacity = max(1, budget_bytes // _ENTRY_BYTES)
        self._entries: dict[bytes, V] = {}

    def get(self, digest: bytes) -> V | None:
        return self._entries.get(digest)

    def put(self, digest: bytes, value: V) -> None:
        if len(self._entries) >= self._capacity:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = value


class TokenVerifier:
    """`verify_access_token` for one app's keys and settings, remembering every result."""

    def __init__(
        self, keys: KeyRing, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = keys
        self._settings = settings
        self._clock = clock
        self._valid: DigestCache[AccessClaims] = DigestCache(VALID_CACHE_BYTES)
        self._refused: DigestCache[str] = DigestCache(REFUSED_CACHE_BYTES)

    def serves(self, keys: KeyRing, settings: Settings) -> bool:
        """Whether it verifies for these very keys and settings (a reload makes a new one)."""
        return keys is self._keys and settings is self._settings

    def verify(self, token: str) -> AccessClaims:
        """The token's claims; InvalidAccessTokenError if it must be refused."""
        if len(token) > MAX_ACCESS_TOKEN_LENGTH:
            # Neither verified nor remembered: ours are well under 1 KB.
            raise InvalidAccessTokenError("token too long")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        claims = self._valid.get(digest)
        if claims is not None:
            # The same tolerance as the signature check's own `exp` check.
            if claims.expires_at + LEEWAY_SECONDS <= self._clock():
                raise InvalidAccessTokenError("Signature has expired")
            return claims
        refusal = self._refused.get(digest)
        if refusal is not None:
            raise InvalidAccessTokenError(refusal)
        try:
            claims = verify_access_token(self._keys, self._settings, token)
        except InvalidAccessTokenError as exc:
            self._refused.put(digest, str(exc))
            raise
        self._valid.put(digest, claims)
        return claims
