"""Access-token verification: the attack suite, key rotation and JWKS (docs/api.md).

Every refused token must get the same 401 with `WWW-Authenticate: Bearer error="invalid_token"`;
a correctly made token is checked alongside, so each attack differs from a valid token in one
respect only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from api.auth import service
from api.auth.keys import generate_private_key_pem, parse_private_keys
from tests.api.auth_helpers import (
    NEWEST_KEY_PEM,
    PREVIOUS_KEY_PEM,
    bearer,
    keyed_settings,
    register_and_login,
)
from tests.conftest import AppHarness, delete_all_rows

NEWEST = parse_private_keys(NEWEST_KEY_PEM).signing_key
PREVIOUS = parse_private_keys(PREVIOUS_KEY_PEM).signing_key
STRANGER = parse_private_keys(generate_private_key_pem()).signing_key


@pytest_asyncio.fixture(scope="module")
async def keyed_app(app_harness: AppHarness, database_url: str) -> FastAPI:
    return await app_harness.start(keyed_settings(database_url))


@pytest_asyncio.fixture(scope="module")
async def http(keyed_app: FastAPI, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(keyed_app) as client:
        yield client
    delete_all_rows(database_url)


@pytest_asyncio.fixture(scope="module")
async def user(http: httpx.AsyncClient) -> dict[str, Any]:
    """One user for the module (argon2 makes registration slow); tests that change a user's
    state register their own."""
    return await register_and_login(http)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(user: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    # The session the user's real token names: a token must belong to a live session.
    session_id = jwt.decode(user["access_token"], options={"verify_signature": False})["sid"]
    claims = {
        "iss": "slipway",
        "aud": "slipway-api",
        "sub": user["user_id"],
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "role": "user",
        "sid": session_id,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], key: Any = None, **header: Any) -> str:
    key = key or NEWEST
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)


async def assert_refused(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get("/v1/users/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_correctly_made_token_is_accepted(
    http: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await http.get("/v1/users/me", headers=bearer(signed(claims_for(user))))
    assert response.status_code == 200
    assert response.json()["id"] == user["user_id"]


async def test_issued_tokens_have_the_contract_header_and_claims(user: dict[str, Any]) -> None:
    header = jwt.get_unverified_header(user["access_token"])
    assert header == {"alg": "ES256", "kid": NEWEST.kid, "typ": "at+jwt"}
    claims = jwt.decode(
        user["access_token"], NEWEST.public_key, algorithms=["ES256"], audience="slipway-api"
    )
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "role", "sid"}
    assert claims["sub"] == user["user_id"]
    assert claims["exp"] - claims["iat"] == user["expires_in"] == 900


async def test_alg_none_is_refused(http: httpx.AsyncClient, user: dict[str, Any]) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": NEWEST.kid}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims_for(user)).encode())}."
    await assert_refused(http, token)


async def test_hs256_signed_with_the_public_key_is_refused(
    http: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    # The classic key-confusion attack: the published public key used as an HMAC secret.
    public_pem = NEWEST.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": NEWEST.kid}).encode())
    payload = _b64(json.dumps(claims_for(user)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    await assert_refused(http, f"{header}.{payload}.{_b64(signature)}")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": int(time.time()) - 60}, id="expired"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-the-future"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"exp": "tomorrow"}, id="exp-not-a-number"),
        pytest.param({"iss": "someone-else"}, id="wrong-iss"),
        pytest.param({"aud": "another-api"}, id="wrong-aud"),
        pytest.param({"role": "superuser"}, id="unknown-role"),
        pytest.param({"sub": "not-a-uuid"}, id="sub-not-a-user-id"),
        pytest.param({"sub": str(uuid.uuid4())}, id="sub-of-no-user"),
        pytest.param({"jti": None}, id="missing-jti"),
        pytest.param({"role": None}, id="missing-role"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"sid": None}, id="missing-sid"),
        pytest.param({"sid": "not-a-session"}, id="sid-not-an-id"),
        pytest.param({"sid": str(uuid.uuid4())}, id="sid-of-no-session"),
    ],
)
async def test_bad_claims_are_refused(
    http: httpx.AsyncClient, user: dict[str, Any], changes: dict[str, Any]
) -> None:
    await assert_refused(http, signed(claims_for(user, **changes)))


async def test_unknown_kid_is_refused(http: httpx.AsyncClient, user: dict[str, Any]) -> None:
    await assert_refused(http, signed(claims_for(user), key=STRANGER))


async def test_a_known_kid_with_a_foreign_signature_is_refused(
    http: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    forged = jwt.encode(
        claims_for(user),
        STRANGER.private_key,
        algorithm="ES256",
        headers={"kid": NEWEST.kid, "typ": "at+jwt"},
    )
    await assert_refused(http, forged)


async def test_keys_offered_in_the_token_header_are_not_trusted(
    http: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    attacker_jwk = STRANGER.public_jwk()
    token = signed(
        claims_for(user),
        key=STRANGER,
        jwk=attacker_jwk,
        jku="https://attacker.example/jwks.json",
        x5u="https://attacker.example/cert.pem",
    )
    await assert_refused(http, token)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWT+extra", None])
async def test_wrong_typ_is_refused(
    http: httpx.AsyncClient, user: dict[str, Any], typ: str | None
) -> None:
    token = jwt.encode(
        claims_for(user),
        NEWEST.private_key,
        algorithm="ES256",
        headers={"kid": NEWEST.kid, "typ": typ},
    )
    await assert_refused(http, token)


async def test_tampered_payload_is_refused(http: httpx.AsyncClient, user: dict[str, Any]) -> None:
    header, _, signature = user["access_token"].split(".")
    promoted = _b64(json.dumps(claims_for(user, role="admin")).encode())
    await assert_refused(http, f"{header}.{promoted}.{signature}")


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 5000],
)
async def test_missing_or_malformed_credentials_are_refused(
    http: httpx.AsyncClient, authorization: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.get("/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_token_of_a_disabled_user_fails_at_the_next_request(
    http: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    user = await register_and_login(http)
    assert (await http.get("/v1/users/me", headers=user["headers"])).status_code == 200
    async with keyed_app.state.database.sessions() as db:
        assert await service.disable_user(db, uuid.UUID(user["user_id"]))
    await assert_refused(http, user["access_token"])
    refreshed = await http.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refreshed.status_code == 401
    relogin = await http.post(
        "/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert relogin.status_code == 401


async def test_a_demoted_admin_loses_admin_access_at_once(
    http: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    admin = await register_and_login(http, admin_app=keyed_app)
    assert (await http.get("/v1/admin/users", headers=admin["headers"])).status_code == 200
    async with keyed_app.state.database.sessions() as db:
        await service.set_role(db, admin["email"], "user")
    # The token still says "admin"; the database is what counts.
    assert (await http.get("/v1/admin/users", headers=admin["headers"])).status_code == 403


async def test_jwks_publishes_every_configured_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == [NEWEST.kid, PREVIOUS.kid]
    for key in keys:
        assert key["kty"] == "EC"
        assert key["crv"] == "P-256"
        assert key["alg"] == "ES256"
        assert key["use"] == "sig"
        assert "d" not in key  # never the private part


async def test_jwks_verifies_issued_tokens(http: httpx.AsyncClient, user: dict[str, Any]) -> None:
    jwks = jwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())
    kid = jwt.get_unverified_header(user["access_token"])["kid"]
    claims = jwt.decode(
        user["access_token"],
        jwks[kid].key,
        algorithms=["ES256"],
        audience="slipway-api",
        issuer="slipway",
    )
    assert claims["sub"] == user["user_id"]


async def test_rotation_keeps_previous_key_tokens_valid_while_listed(
    http: httpx.AsyncClient,
    user: dict[str, Any],
    app_harness: AppHarness,
    database_url: str,
) -> None:
    from_previous_key = signed(claims_for(user), key=PREVIOUS)
    assert (await http.get("/v1/users/me", headers=bearer(from_previous_key))).status_code == 200
    # New tokens are signed by the newest key only.
    assert jwt.get_unverified_header(user["access_token"])["kid"] == NEWEST.kid

    # Once the previous key is retired from JWT_PRIVATE_KEYS, its tokens stop working.
    retired = await app_harness.start(keyed_settings(database_url, NEWEST_KEY_PEM))
    async with AppHarness.client(retired) as after_retirement:
        refused = await after_retirement.get("/v1/users/me", headers=bearer(from_previous_key))
        assert refused.status_code == 401
        still_valid = await after_retirement.get("/v1/users/me", headers=user["headers"])
        assert still_valid.status_code == 200
        jwks = (await after_retirement.get("/.well-known/jwks.json")).json()
        assert [key["kid"] for key in jwks["keys"]] == [NEWEST.kid]
