"""Account lifecycle through HTTP, with every message going through a real SMTP server:
verification, password reset and change, their rate limits and their OpenAPI description.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI
from sqlalchemy import event, update

from api.account.dependencies import VerifiedUser
from api.account.models import AccountToken
from api.auth.models import utc_now
from api.auth.tokens import hash_refresh_token
from api.email.setup import email_sender_of
from tests.api.auth_helpers import STRONG_PASSWORD, bearer, login, unique_email
from tests.api.email_support import SMTP_PASSWORD, SmtpServer, parts
from tests.conftest import TEST_JWT_PRIVATE_KEY, AppHarness, delete_all_rows, make_settings

LINK_BASE = "https://app.example.com"
NEW_PASSWORD = "a-brand-new-passphrase-77"
_TOKEN_IN_LINK = re.compile(re.escape(LINK_BASE) + r"/([a-z-]+)#token=([A-Za-z0-9_-]+)")

verified_router = APIRouter()


@verified_router.get("/test/verified-only")
async def verified_only(user: VerifiedUser) -> dict[str, str]:
    return {"email": user.email}


def account_settings(database_url: str, smtp_server: SmtpServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "email_smtp_url": smtp_server.url,
        "email_retry_base_seconds": 0.01,
        "email_link_base_url": LINK_BASE,
        "product_name": "Acme",
        **overrides,
    }
    return make_settings(database_url, **values)


@pytest_asyncio.fixture(scope="module")
async def account_app(
    app_harness: AppHarness, database_url: str, smtp_server: SmtpServer
) -> FastAPI:
    return await app_harness.start(account_settings(database_url, smtp_server))


@pytest_asyncio.fixture
async def http(account_app: FastAPI, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(account_app) as client:
        yield client
    await drain(account_app)  # before the session's SMTP server stops
    delete_all_rows(database_url)


async def mail(smtp_server: SmtpServer, to: str, subject_start: str) -> EmailMessage:
    return await smtp_server.wait_for(
        lambda m: m["To"] == to and str(m["Subject"]).startswith(subject_start)
    )


def link_token(message: EmailMessage, page: str) -> str:
    text, html = parts(message)
    found = _TOKEN_IN_LINK.search(text)
    assert found is not None, text
    assert found.group(1) == page
    assert found.group(0) in html
    return found.group(2)


async def register(http: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    email = email or unique_email()
    response = await http.post(
        "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "password": STRONG_PASSWORD}


async def drain(app: FastAPI) -> None:
    await email_sender_of(app).drain(10)


# --- verification -----------------------------------------------------------------------


async def test_the_verification_link_verifies_once_and_never_again(
    http: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    user = await register(http)
    assert user["email_verified"] is False
    message = await mail(smtp_server, user["email"], "Confirm your email address for Acme")
    token = link_token(message, "verify-email")

    # The email holds the link and nothing else secret: no token hash, no server credential.
    raw = message.as_string()
    assert hash_refresh_token(token) not in raw
    assert SMTP_PASSWORD not in raw
    assert "PRIVATE KEY" not in raw
    assert TEST_JWT_PRIVATE_KEY[40:80] not in raw

    verified = await http.post("/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    again = await http.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"].endswith("/invalid-token")

    pair = await login(http, user["email"], STRONG_PASSWORD)
    me = await http.get("/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email_verified"] is True


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(secrets.token_urlsafe(32), id="forged"),
        pytest.param("x", id="short-junk"),
        pytest.param("ä" * 64, id="unicode-junk"),
    ],
)
async def test_forged_verification_tokens_are_refused(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post("/v1/auth/verify-email", json={"token": token})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_oversized_or_missing_tokens_are_422(http: httpx.AsyncClient) -> None:
    for body in ({"token": "a" * 129}, {}, {"token": ""}, {"token": 5}):
        response = await http.post("/v1/auth/verify-email", json=body)
        assert response.status_code == 422, body


async def _expire_tokens(app: FastAPI) -> None:
    async with app.state.database.sessions() as db:
        await db.execute(update(AccountToken).values(expires_at=utc_now() - timedelta(seconds=1)))
        await db.commit()


async def test_an_expired_verification_link_is_refused(
    http: httpx.AsyncClient, smtp_server: SmtpServer, account_app: FastAPI
) -> None:
    user = await register(http)
    token = link_token(await mail(smtp_server, user["email"], "Confirm"), "verify-email")
    await _expire_tokens(account_app)
    assert (await http.post("/v1/auth/verify-email", json={"token": token})).status_code == 400


async def test_resend_sends_a_new_link_and_refuses_verified_users(
    http: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    user = await register(http)
    first = link_token(await mail(smtp_server, user["email"], "Confirm"), "verify-email")
    pair = await login(http, user["email"], STRONG_PASSWORD)
    assert (await http.post("/v1/auth/verify-email/resend")).status_code == 401
    resent = await http.post("/v1/auth/verify-email/resend", headers=bearer(pair["access_token"]))
    assert resent.status_code == 202
    second = await smtp_server.wait_for(
        lambda m: m["To"] == user["email"] and link_token(m, "verify-email") != first
    )
    token = link_token(second, "verify-email")
    assert (await http.post("/v1/auth/verify-email", json={"token": token})).status_code == 200
    # Verified: the older link is spent too, and a resend has nothing to do.
    assert (await http.post("/v1/auth/verify-email", json={"token": first})).status_code == 400
    again = await http.post("/v1/auth/verify-email/resend", headers=bearer(pair["access_token"]))
    assert again.status_code == 409


async def test_required_verification_blocks_login_and_verified_only_endpoints(
    app_harness: AppHarness, database_url: str, smtp_server: SmtpServer
) -> None:
    settings = account_settings(database_url, smtp_server, require_verified_email=True)
    app = await app_harness.start(settings)
    app.include_router(verified_router)
    async with AppHarness.client(app) as client:
        user = await register(client)
        first = await mail(smtp_server, user["email"], "Confirm")
        credentials = {"email": user["email"], "password": STRONG_PASSWORD}
        refused = await client.post("/v1/auth/login", json=credentials)
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/email-not-verified")
        # A wrong password still gets the plain 401: the 403 needs the right one.
        wrong = await client.post("/v1/auth/login", json={**credentials, "password": "x" * 12})
        assert wrong.status_code == 401

        token = link_token(first, "verify-email")
        assert (
            await client.post("/v1/auth/verify-email", json={"token": token})
        ).status_code == 200
        pair = await login(client, user["email"], STRONG_PASSWORD)
        allowed = await client.get("/test/verified-only", headers=bearer(pair["access_token"]))
        assert allowed.status_code == 200
    await drain(app)
    delete_all_rows(database_url)


async def test_a_refused_login_sends_a_fresh_link_when_the_last_one_is_old(
    app_harness: AppHarness, database_url: str, smtp_server: SmtpServer
) -> None:
    settings = account_settings(database_url, smtp_server, require_verified_email=True)
    app = await app_harness.start(settings)
    async with AppHarness.client(app) as client:
        user = await register(client)
        first = link_token(await mail(smtp_server, user["email"], "Confirm"), "verify-email")
        await _expire_tokens(app)  # the link went out long ago
        async with app.state.database.sessions() as db:
            long_ago = utc_now() - timedelta(hours=1)
            await db.execute(update(AccountToken).values(created_at=long_ago))
            await db.commit()
        credentials = {"email": user["email"], "password": STRONG_PASSWORD}
        assert (await client.post("/v1/auth/login", json=credentials)).status_code == 403
        fresh = await smtp_server.wait_for(
            lambda m: m["To"] == user["email"] and link_token(m, "verify-email") != first
        )
        token = link_token(fresh, "verify-email")
        assert (
            await client.post("/v1/auth/verify-email", json={"token": token})
        ).status_code == 200
    await drain(app)
    delete_all_rows(database_url)


async def test_unverified_users_are_refused_by_verified_only_endpoints(
    app_harness: AppHarness, database_url: str, smtp_server: SmtpServer
) -> None:
    app = await app_harness.start(account_settings(database_url, smtp_server))
    app.include_router(verified_router)
    async with AppHarness.client(app) as client:
        user = await register(client)
        pair = await login(client, user["email"], STRONG_PASSWORD)  # allowed: not required here
        refused = await client.get("/test/verified-only", headers=bearer(pair["access_token"]))
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/email-not-verified")
    await drain(app)
    delete_all_rows(database_url)


# --- password reset -----------------------------------------------------------------------


class StatementCounter:
    """Counts SQL statements the app's engine runs, to compare the work two requests do."""

    def __init__(self, app: FastAPI) -> None:
        self.count = 0
        self._engine = app.state.database.engine.sync_engine

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


async def test_reset_for_known_and_unknown_addresses_is_indistinguishable(
    http: httpx.AsyncClient, smtp_server: SmtpServer, account_app: FastAPI
) -> None:
    user = await register(http)
    unknown = unique_email("nobody")
    answers, statements = [], []
    for email in (user["email"], unknown, "not an address", user["email"].upper()):
        with StatementCounter(account_app) as counter:
            answers.append(await http.post("/v1/auth/password-reset", json={"email": email}))
            statements.append(counter.count)
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.content for answer in answers}) == 1
    assert len({tuple(sorted(answer.headers.keys())) for answer in answers}) == 1
    # The request does the same work either way: no statement at all; the lookup happens after
    # the answer, in the background job.
    assert statements == [0, 0, 0, 0]

    await drain(account_app)
    reset_mails = [m for m in smtp_server.messages if str(m["Subject"]).startswith("Reset")]
    assert sum(m["To"] == user["email"] for m in reset_mails) == 2
    assert not any(m["To"] == unknown for m in reset_mails)


async def test_reset_confirm_sets_the_password_and_ends_every_session(
    http: httpx.AsyncClient, smtp_server: SmtpServer, account_app: FastAPI
) -> None:
    user = await register(http)
    sessions = [await login(http, user["email"], STRONG_PASSWORD) for _ in range(2)]
    for _ in range(2):
        await http.post("/v1/auth/password-reset", json={"email": user["email"]})
    await drain(account_app)
    mails = [m for m in smtp_server.messages if m["To"] == user["email"]]
    older, newer = (link_token(m, "reset-password") for m in mails if "Reset" in m["Subject"])

    confirm = {"token": newer, "new_password": NEW_PASSWORD}
    response = await http.post("/v1/auth/password-reset/confirm", json=confirm)
    assert response.status_code == 204, response.text

    for pair in sessions:
        refresh = await http.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refresh.status_code == 401
        me = await http.get("/v1/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
    old_login = {"email": user["email"], "password": STRONG_PASSWORD}
    assert (await http.post("/v1/auth/login", json=old_login)).status_code == 401
    pair = await login(http, user["email"], NEW_PASSWORD)
    me = (await http.get("/v1/users/me", headers=bearer(pair["access_token"]))).json()
    assert me["email_verified"] is True  # the reset link proved the mailbox

    # Reused, and the other outstanding link: both dead.
    for token in (newer, older):
        retry = {"token": token, "new_password": "yet-another-passphrase-9"}
        assert (await http.post("/v1/auth/password-reset/confirm", json=retry)).status_code == 400
    notice = await mail(smtp_server, user["email"], "Your Acme password was changed")
    assert "signed out" in parts(notice)[0]


async def test_reset_confirm_refuses_weak_passwords_and_bad_tokens(
    http: httpx.AsyncClient, smtp_server: SmtpServer, account_app: FastAPI
) -> None:
    user = await register(http)
    await http.post("/v1/auth/password-reset", json={"email": user["email"]})
    token = link_token(await mail(smtp_server, user["email"], "Reset"), "reset-password")
    weak = await http.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 422
    # A verification token is no reset token.
    verify_token = link_token(await mail(smtp_server, user["email"], "Confirm"), "verify-email")
    wrong_kind = {"token": verify_token, "new_password": NEW_PASSWORD}
    assert (await http.post("/v1/auth/password-reset/confirm", json=wrong_kind)).status_code == 400
    await _expire_tokens(account_app)
    expired = {"token": token, "new_password": NEW_PASSWORD}
    assert (await http.post("/v1/auth/password-reset/confirm", json=expired)).status_code == 400
    assert (await login(http, user["email"], STRONG_PASSWORD))["access_token"]


async def test_concurrent_confirms_of_one_link_have_one_winner(
    http: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    user = await register(http)
    await http.post("/v1/auth/password-reset", json={"email": user["email"]})
    token = link_token(await mail(smtp_server, user["email"], "Reset"), "reset-password")
    bodies = [{"token": token, "new_password": f"{NEW_PASSWORD}-{n}"} for n in range(2)]
    answers = await asyncio.gather(
        *(http.post("/v1/auth/password-reset/confirm", json=body) for body in bodies)
    )
    assert sorted(answer.status_code for answer in answers) == [204, 400]


# --- password change ----------------------------------------------------------------------


async def test_change_password_keeps_this_session_and_ends_the_others(
    http: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    user = await register(http)
    this = await login(http, user["email"], STRONG_PASSWORD)
    other = await login(http, user["email"], STRONG_PASSWORD)
    change = {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}
    response = await http.post(
        "/v1/auth/password", json=change, headers=bearer(this["access_token"])
    )
    assert response.status_code == 204, response.text

    assert (await http.get("/v1/users/me", headers=bearer(this["access_token"]))).status_code == 200
    kept = await http.post("/v1/auth/refresh", json={"refresh_token": this["refresh_token"]})
    assert kept.status_code == 200
    assert (
        await http.get("/v1/users/me", headers=bearer(other["access_token"]))
    ).status_code == 401
    ended = await http.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert ended.status_code == 401
    assert (await login(http, user["email"], NEW_PASSWORD))["access_token"]
    await mail(smtp_server, user["email"], "Your Acme password was changed")


async def test_change_password_refuses_a_wrong_current_password(http: httpx.AsyncClient) -> None:
    user = await register(http)
    pair = await login(http, user["email"], STRONG_PASSWORD)
    headers = bearer(pair["access_token"])
    wrong = {"current_password": "not-my-password-1", "new_password": NEW_PASSWORD}
    refused = await http.post("/v1/auth/password", json=wrong, headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    same = {"current_password": STRONG_PASSWORD, "new_password": STRONG_PASSWORD}
    assert (await http.post("/v1/auth/password", json=same, headers=headers)).status_code == 422
    weak = {"current_password": STRONG_PASSWORD, "new_password": "password123"}
    assert (await http.post("/v1/auth/password", json=weak, headers=headers)).status_code == 422
    anonymous = await http.post("/v1/auth/password", json=wrong)
    assert anonymous.status_code == 401
    assert (await login(http, user["email"], STRONG_PASSWORD))["access_token"]


# --- rate limits (the bundled policies) ------------------------------------------------------


async def test_reset_is_limited_per_ip_and_per_address_resend_per_user(
    app_harness: AppHarness, database_url: str, smtp_server: SmtpServer
) -> None:
    app = await app_harness.start(
        account_settings(database_url, smtp_server, rate_limits_file=None)
    )
    async with AppHarness.client(app, client_ip=f"198.51.100.{uuid.uuid4().int % 200}") as client:
        user = await register(client)
        answers = [
            await client.post("/v1/auth/password-reset", json={"email": unique_email()})
            for _ in range(11)
        ]
        assert [a.status_code for a in answers] == [202] * 10 + [429]
        assert answers[-1].json()["policy"] == "password-reset"

        # Per address, whoever asks: every answer is 202, but only 3 emails go out.
        for index in range(5):
            async with AppHarness.client(app, client_ip=f"203.0.113.{index + 1}") as other:
                reset = await other.post("/v1/auth/password-reset", json={"email": user["email"]})
                assert reset.status_code == 202
        await drain(app)
        sent = [
            m for m in smtp_server.messages if m["To"] == user["email"] and "Reset" in m["Subject"]
        ]
        assert len(sent) == 3

        pair = await login(client, user["email"], STRONG_PASSWORD)
        headers = bearer(pair["access_token"])
        resends = [
            await client.post("/v1/auth/verify-email/resend", headers=headers) for _ in range(6)
        ]
        assert [r.status_code for r in resends] == [202] * 5 + [429]
    await drain(app)
    delete_all_rows(database_url)


# --- the OpenAPI description ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        # 400 (malformed body), 413 (body over 1 MiB) and 503 (database unavailable) are the
        # answers every operation that reads a body or the database can give.
        ("/v1/auth/verify-email", {"200", "400", "413", "422", "429", "503"}),
        ("/v1/auth/verify-email/resend", {"202", "401", "409", "429", "503"}),
        # The request only queues a job (the same work for every address): no database.
        ("/v1/auth/password-reset", {"202", "400", "413", "422", "429"}),
        ("/v1/auth/password-reset/confirm", {"204", "400", "413", "422", "429", "503"}),
        ("/v1/auth/password", {"204", "400", "401", "403", "413", "422", "429", "503"}),
    ],
)
async def test_openapi_documents_every_answer(
    http: httpx.AsyncClient, path: str, statuses: set[str]
) -> None:
    operation = (await http.get("/openapi.json")).json()["paths"][path]["post"]
    assert set(operation["responses"]) == statuses
    for status, response in operation["responses"].items():
        if status >= "400":
            assert list(response["content"]) == ["application/problem+json"]


async def test_openapi_documents_the_unverified_login_refusal(http: httpx.AsyncClient) -> None:
    responses = (await http.get("/openapi.json")).json()["paths"]["/v1/auth/login"]["post"][
        "responses"
    ]
    for status in ("401", "403"):
        assert list(responses[status]["content"]) == ["application/problem+json"]
