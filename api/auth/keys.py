"""Signing keys for access tokens: loaded from JWT_PRIVATE_KEYS, or a development key on disk.

JWT_PRIVATE_KEYS holds PEM EC P-256 private keys, newest first: the first signs, all verify and
are published in the JWKS, so a new key can be introduced (and an old one retired later)
without logging anyone out. A key's `kid` is its RFC 7638 thumbprint, so it is stable and
nobody has to invent names for keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from api.http_caching import CachedRepresentation
from api.settings import Settings

DEV_KEY_PATH = Path(".data") / "jwt-dev-key.pem"
_PEM_BLOCK = re.compile(
    r"-----BEGIN (?:EC )?PRIVATE KEY-----.+?-----END (?:EC )?PRIVATE KEY-----", re.DOTALL
)


class KeyConfigurationError(RuntimeError):
    """JWT_PRIVATE_KEYS is unusable; the message never contains key material."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}


class KeyRing:
    """The configured keys: one signs, every one verifies, looked up by `kid` only."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise KeyConfigurationError("JWT_PRIVATE_KEYS contains no key")
        self.signing_key = keys[0]
        self._by_kid = {key.kid: key for key in keys}
        self._jwks = {"keys": [key.public_jwk() for key in keys]}
        # The JWKS body is served as these exact bytes: its ETag is stable across instances.
        self.jwks_document = CachedRepresentation(
            json.dumps(self._jwks, separators=(",", ":")).encode()
        )

    def verification_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._by_kid.get(kid)
        return key.public_key if key is not None else None

    def jwks(self) -> dict[str, Any]:
        return self._jwks


def _thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {name: jwk[name] for name in ("crv", "kty", "x", "y")},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _signing_key(pem: str, position: int) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise KeyConfigurationError(
            f"JWT_PRIVATE_KEYS: key #{position} is not a valid PEM key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyConfigurationError(f"JWT_PRIVATE_KEYS: key #{position} is not an EC P-256 key")
    return SigningKey(kid=_thumbprint(key.public_key()), private_key=key)


def parse_private_keys(value: str) -> KeyRing:
    # Environments that cannot hold newlines often carry PEM with literal "\n" escapes.
    text = value.replace("\\n", "\n")
    blocks = _PEM_BLOCK.findall(text)
    return KeyRing([_signing_key(block, index) for index, block in enumerate(blocks, start=1)])


def generate_private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def development_key(path: Path = DEV_KEY_PATH) -> str:
    """The development key, generated once and kept readable by its owner only.

    The key is written to a private temporary file and hard-linked into place, which fails if
    another process got there first: concurrent start-ups end up sharing one complete key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".jwt-key-")
        try:
            with os.fdopen(descriptor, "w") as handle:  # mkstemp creates files with mode 0600
                handle.write(generate_private_key_pem())
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text()


def load_keyring(settings: Settings) -> KeyRing:
    configured = settings.jwt_private_keys.get_secret_value() if settings.jwt_private_keys else ""
    if configured.strip():
        return parse_private_keys(configured)
    if settings.is_deployed:  # settings already refuse this; never fall back to a disk key
        raise KeyConfigurationError(f"JWT_PRIVATE_KEYS is required in {settings.app_env}")
    return parse_private_keys(development_key())
