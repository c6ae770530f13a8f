"""DAST, part two: the attacks of issue 12's outside probe, replayed over HTTP against a live
API running the bundled rate-limit policies (tests/dast/conftest.py `attack_target`).

Every response of this module, whatever the attack, is also checked for the browser security
headers and for leaked internals (a stack trace, a driver's exception) by the client's hook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.dast.conftest import DastTarget
from tests.dast.hooks import LEAKED_INTERNALS

# The bundled `login` policy (api/ratelimit/default_policies.toml): 10 per 60 s per IP + email.
LOGIN_QUOTA = 10
WINDOW_SECONDS = 60
# ... and `auth-ip`: 30 per 60 s per address, every login and registration whatever the email.
AUTH_IP_QUOTA = 30
ATTEMPTS = LOGIN_QUOTA + 5
WRONG_PASSWORD = "not-the-password-0000"
NESTING_DEPTH = 100_000
OVERSIZED_TOKEN_BYTES = 8 * 1024


def _check_response(response: httpx.Response) -> None:
    response.read()
    assert response.status_code < 500, (response.request.url, response.text)
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    leak = LEAKED_INTERNALS.search(response.text)
    assert leak is None, (response.request.url, leak)


_addresses = itertools.count(1)


@pytest.fixture
def http(attack_target: DastTarget) -> Iterator[httpx.Client]:
    """A client at an address of its own (198.18.0.0/15, reserved for such tests): per-address
    quotas spent by one attack never decide another's outcome."""
    number = next(_addresses)
    address = f"198.18.{number // 256}.{number % 256}"
    with httpx.Client(
        base_url=attack_target.base_url,
        timeout=30,
        headers={"x-forwarded-for": address},
        event_hooks={"response": [_check_response]},
    ) as client:
        yield client


def _victim() -> str:
    return f"victim-{uuid.uuid4().hex[:10]}@example.com"


def _reached_authentication(statuses: list[int]) -> int:
    """Attempts that got as far as checking the password (401), i.e. were not refused first."""
    return Counter(statuses)[401]


def _allowance(quota: int, started: float) -> int:
    """What a policy of `quota` per minute admits since `started`: the burst, plus what the
    limiter's GCRA has replenished meanwhile (one request every 60/quota seconds)."""
    return quota + math.ceil((time.monotonic() - started) * quota / WINDOW_SECONDS)


def test_duplicate_username_fields_do_not_escape_the_login_limit(http: httpx.Client) -> None:
    """Finding 1a: the limiter keyed on the first `username`, login read the last one."""
    victim = _victim()
    started = time.monotonic()
    statuses = []
    for attempt in range(ATTEMPTS):
        body = f"username=decoy{attempt}%40example.com&username={victim}&password={WRONG_PASSWORD}"
        response = http.post(
            "/v1/auth/token",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        statuses.append(response.status_code)
    assert _reached_authentication(statuses) <= _allowance(LOGIN_QUOTA, started), statuses
    assert set(statuses) <= {400, 401, 422, 429}, statuses


FULLWIDTH_OFFSET = 0xFF41 - ord("a")  # U+FF41 FULLWIDTH LATIN SMALL LETTER A


def _spellings(email: str) -> Iterator[str]:
    """The same address spelled differently: in capitals, then each domain letter in its
    fullwidth form and in fullwidth capitals, in turn. Login normalises all of them (NFC,
    IDNA) to `email`."""
    local, domain = email.split("@")
    yield email.upper()
    for index, char in enumerate(domain):
        if char.isalpha():
            for fullwidth in (chr(ord(char) + FULLWIDTH_OFFSET), chr(ord(char.upper()) + 0xFEE0)):
                yield f"{local}@{domain[:index]}{fullwidth}{domain[index + 1 :]}"


def test_other_spellings_of_an_email_share_its_login_limit(http: httpx.Client) -> None:
    """Finding 1b: the limiter only lower-cased the email; each spelling had a fresh quota."""
    spellings = list(_spellings(_victim()))[:ATTEMPTS]
    assert len(spellings) == ATTEMPTS
    started = time.monotonic()
    statuses = [
        http.post(
            "/v1/auth/login", json={"email": spelling, "password": WRONG_PASSWORD}
        ).status_code
        for spelling in spellings
    ]
    assert _reached_authentication(statuses) <= _allowance(LOGIN_QUOTA, started), statuses
    assert 429 in statuses, statuses


def test_forwarded_for_headers_do_not_buy_new_quotas(http: httpx.Client) -> None:
    """Finding 8: a client writing its own X-Forwarded-For entries in front of what the
    trusted proxy appends (uvicorn runs with --no-proxy-headers; the app believes only
    TRUSTED_PROXIES) is still the address the proxy saw."""
    client_address = http.headers["x-forwarded-for"]
    victim = _victim()
    started = time.monotonic()
    statuses = [
        http.post(
            "/v1/auth/login",
            json={"email": victim, "password": WRONG_PASSWORD},
            headers={
                "x-forwarded-for": f"203.0.113.{attempt}, {client_address}",
                "x-real-ip": f"198.51.100.{attempt}",
                "forwarded": f"for=192.0.2.{attempt}",
            },
        ).status_code
        for attempt in range(ATTEMPTS)
    ]
    assert _reached_authentication(statuses) <= _allowance(LOGIN_QUOTA, started), statuses
    assert 429 in statuses, statuses


def test_spraying_many_accounts_from_one_address_is_capped(http: httpx.Client) -> None:
    """Finding 4: 300 logins naming 300 emails from one address all reached the password
    check. The per-address companion policy (`auth-ip`) caps them."""

    def attempt(_: int) -> int:
        body = {"email": _victim(), "password": WRONG_PASSWORD}
        return http.post("/v1/auth/login", json=body).status_code

    # Concurrently, as a sprayer would: the quota refills one request every 2 s, so a slow
    # sequential run on a loaded machine would be admitted a little more each second.
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(AUTH_IP_QUOTA + 10)))
    assert _reached_authentication(statuses) <= _allowance(AUTH_IP_QUOTA, started), statuses
    assert 429 in statuses, statuses


@pytest.mark.parametrize(
    "path", ["/v1/auth/login", "/v1/auth/token", "/v1/auth/register", "/v1/auth/refresh"]
)
def test_deeply_nested_json_is_a_client_error(http: httpx.Client, path: str) -> None:
    """Finding 3: RecursionError in the limiter's JSON parse answered 500 with a traceback."""
    body = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"


def test_deeply_nested_json_to_the_webhook_is_refused(http: httpx.Client) -> None:
    body = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
    response = http.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"content-type": "application/json", "stripe-signature": "t=1,v1=00"},
    )
    assert response.status_code == 400


def test_oversized_bearer_tokens_are_refused(http: httpx.Client) -> None:
    """Finding 2: every distinct bearer string was kept whole in the limiter's cache."""
    for _ in range(20):
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes * (OVERSIZED_TOKEN_BYTES // 16))
        response = http.get("/v1/users/me", headers={"authorization": f"Bearer {token.decode()}"})
        assert response.status_code == 401
    assert http.get("/readyz").status_code == 200


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_with_the_public_key(http: httpx.Client, header: dict[str, Any], payload: Any) -> str:
    """The classic algorithm confusion: HMAC-sign with the server's public key as the secret."""
    jwk = http.get("/.well-known/jwks.json").json()["keys"][0]
    public_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({**header, 'alg': 'HS256'})}.{_b64(payload)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _forged_tokens(http: httpx.Client, genuine: str) -> dict[str, str]:
    header_b64, payload_b64, signature = genuine.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    escalated = {**payload, "role": "admin"}
    expired = {**payload, "exp": int(time.time()) - 3600}
    return {
        "alg none": f"{_b64({**header, 'alg': 'none'})}.{_b64(escalated)}.",
        "HS256 keyed with the public key": _hs256_with_the_public_key(http, header, escalated),
        "role tampered": f"{header_b64}.{_b64(escalated)}.{signature}",
        "expired, re-used signature": f"{header_b64}.{_b64(expired)}.{signature}",
        "unknown kid": f"{_b64({**header, 'kid': 'attacker'})}.{payload_b64}.{signature}",
        "no typ": f"{_b64({k: v for k, v in header.items() if k != 'typ'})}.{payload_b64}."
        f"{signature}",
        "truncated signature": f"{header_b64}.{payload_b64}.{signature[:-4]}",
    }


def test_forged_access_tokens_are_refused(http: httpx.Client, attack_target: DastTarget) -> None:
    for name, token in _forged_tokens(http, attack_target.user.access_token).items():
        response = http.get("/v1/admin/users", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"].startswith("Bearer"), name


def test_a_user_is_no_admin(http: httpx.Client, attack_target: DastTarget) -> None:
    assert http.get("/v1/admin/users", headers=attack_target.user.headers).status_code == 403
    assert http.get("/v1/admin/users", headers=attack_target.admin.headers).status_code == 200


def _new_account(http: httpx.Client) -> dict[str, str]:
    email, password = _victim(), f"pw-{uuid.uuid4().hex}"
    assert (
        http.post("/v1/auth/register", json={"email": email, "password": password}).status_code
        == 201
    )
    pair: dict[str, str] = http.post(
        "/v1/auth/login", json={"email": email, "password": password}
    ).json()
    return pair


def test_a_spent_refresh_token_revokes_its_family(http: httpx.Client) -> None:
    first = _new_account(http)
    second = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    replayed = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replayed.status_code == 401
    after_theft = http.post(
        "/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert after_theft.status_code == 401


def test_other_users_payments_and_sessions_are_invisible(
    http: httpx.Client, attack_target: DastTarget
) -> None:
    """IDOR: ids of another user's objects answer 404, exactly like ids that do not exist."""
    owner = attack_target.user.headers
    created = http.post(
        "/v1/payments",
        json={"price_id": _any_price_id(http), "quantity": 1},
        headers={**owner, "idempotency-key": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    session_id = http.get("/v1/auth/sessions", headers=owner).json()[0]["id"]

    intruder = {"authorization": f"Bearer {_new_account(http)['access_token']}"}
    payment = http.get(f"/v1/payments/{created.json()['id']}", headers=intruder)
    missing = http.get(f"/v1/payments/{uuid.uuid4()}", headers=intruder)
    assert payment.status_code == missing.status_code == 404
    assert payment.json()["detail"] == missing.json()["detail"]
    assert http.delete(f"/v1/auth/sessions/{session_id}", headers=intruder).status_code == 404
    assert http.get("/v1/payments", headers=intruder).json()["items"] == []
    refund = http.post(f"/v1/payments/{created.json()['id']}/refund", headers=intruder)
    assert refund.status_code == 403


def _any_price_id(http: httpx.Client) -> str:
    prices = http.get("/v1/prices").json()
    price_id: str = next(price["id"] for price in prices if price["type"] == "one_time")
    return price_id


@pytest.mark.parametrize(
    "signature",
    [None, "", "t=1,v1=" + "0" * 64, f"t={int(time.time())},v1=" + "f" * 64, "garbage"],
    # Stable ids (one signature carries the time): `pytest --lf` and parallel workers agree.
    ids=["missing", "empty", "expired", "forged", "garbage"],
)
def test_unsigned_or_forged_webhooks_change_nothing(
    http: httpx.Client, signature: str | None
) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": "payment_intent.succeeded", "data": {}}
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["stripe-signature"] = signature
    response = http.post("/v1/webhooks/stripe", content=json.dumps(event), headers=headers)
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-signature")


def test_docs_load_nothing_from_other_origins(http: httpx.Client) -> None:
    """Finding 7 (the browser test in tests/api/test_docs_browser.py goes further)."""
    page = http.get("/docs")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "://" not in page.text
