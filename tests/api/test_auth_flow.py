"""Accounts and sessions through HTTP, on SQLite and PostgreSQL (docs/api.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.api.auth_helpers import (
    STRONG_PASSWORD,
    bearer,
    login,
    register_and_login,
    unique_email,
)
from tests.conftest import AppHarness, delete_all_rows, make_settings


async def test_register_login_me_refresh_logout(client: httpx.AsyncClient) -> None:
    email = unique_email()
    registered = await client.post(
        "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert registered.status_code == 201
    user = registered.json()
    assert set(user) == {"id", "email", "role", "created_at", "email_verified"}
    assert user["email_verified"] is False
    assert (user["email"], user["role"]) == (email, "user")

    logged_in = await client.post(
        "/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert logged_in.headers["cache-control"] == "no-store"
    pair = logged_in.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await client.get("/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json() == {**user, "entitlements": []}  # no subscription, nothing granted

    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != pair["refresh_token"]
    me_again = await client.get("/v1/users/me", headers=bearer(new_pair["access_token"]))
    assert me_again.json() == {**user, "entitlements": []}

    logout = await client.post("/v1/auth/logout", json={"refresh_token": new_pair["refresh_token"]})
    assert logout.status_code == 204
    after_logout = await client.post(
        "/v1/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}
    )
    assert after_logout.status_code == 401
    assert after_logout.headers["content-type"] == "application/problem+json"


async def test_email_is_normalised_and_unique(client: httpx.AsyncClient) -> None:
    local = unique_email().split("@")[0]
    first = await client.post(
        "/v1/auth/register",
        json={"email": f"  {local.upper()}@Example.COM ", "password": STRONG_PASSWORD},
    )
    assert first.status_code == 201
    assert first.json()["email"] == f"{local}@example.com"
    again = await client.post(
        "/v1/auth/register", json={"email": f"{local}@EXAMPLE.com", "password": STRONG_PASSWORD}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    # Logging in works however the address is typed.
    await login(client, f"{local.title()}@example.Com", STRONG_PASSWORD)


@pytest.mark.parametrize(
    ("email", "password", "complaint"),
    [
        pytest.param("not-an-email", STRONG_PASSWORD, "email", id="bad-email"),
        pytest.param("a@b", STRONG_PASSWORD, "email", id="no-tld"),
        pytest.param("x" * 400 + "@example.com", STRONG_PASSWORD, "email", id="huge-email"),
        pytest.param(None, "short-pw-11", "12 characters", id="short-password"),
        pytest.param(None, "1qaz2wsx3edc", "too common", id="common-password"),
        pytest.param(None, "PASSWORD1234", "too common", id="common-password-any-case"),
        pytest.param(None, "p" * 1025, "at most", id="huge-password"),
    ],
)
async def test_register_refuses_bad_input_with_422(
    client: httpx.AsyncClient, email: str | None, password: str, complaint: str
) -> None:
    response = await client.post(
        "/v1/auth/register", json={"email": email or unique_email(), "password": password}
    )
    assert response.status_code == 422
    body = response.json()
    assert complaint in str(body["errors"])
    assert password not in response.text  # rejected input is never echoed


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="no-body"),
        pytest.param("not json", id="not-json"),
        pytest.param([1, 2], id="json-list"),
        pytest.param({"email": 5, "password": []}, id="wrong-types"),
        pytest.param({"email": "a@example.com"}, id="missing-password"),
        pytest.param({"email": "a@example.com", "password": "x", "role": "admin"}, id="extra"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"])
async def test_malformed_bodies_are_422_never_5xx(
    client: httpx.AsyncClient, path: str, body: Any
) -> None:
    if isinstance(body, str):
        response = await client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = await client.post(path, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_email_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    user = await register_and_login(client)
    attempts = [
        {"email": user["email"], "password": "wrong-password-123"},
        {"email": unique_email(), "password": STRONG_PASSWORD},
        {"email": "not even an email", "password": STRONG_PASSWORD},
        {"email": user["email"], "password": "short"},
    ]
    responses = [await client.post("/v1/auth/login", json=attempt) for attempt in attempts]
    assert {response.status_code for response in responses} == {401}
    assert len({response.content for response in responses}) == 1


async def test_oauth2_password_form_issues_a_token_pair(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    form = {"grant_type": "password", "username": user["email"], "password": user["password"]}
    response = await client.post("/v1/auth/token", data=form)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    pair = response.json()
    assert pair["token_type"] == "bearer"
    me = await client.get("/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email"] == user["email"]
    wrong = await client.post("/v1/auth/token", data={**form, "password": "nope-nope-nope"})
    assert wrong.status_code == 401


async def test_sessions_are_listed_and_revoked(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    second = await client.post(
        "/v1/auth/login",
        json={"email": user["email"], "password": user["password"]},
        headers={"User-Agent": "second-device/1.0"},
    )
    listed = await client.get("/v1/auth/sessions", headers=user["headers"])
    assert listed.status_code == 200
    sessions = listed.json()
    assert len(sessions) == 2
    assert set(sessions[0]) == {"id", "created_at", "last_used_at", "user_agent", "ip"}
    newest = sessions[0]
    assert newest["user_agent"] == "second-device/1.0"
    assert newest["ip"] == "127.0.0.1"

    revoked = await client.delete(f"/v1/auth/sessions/{newest['id']}", headers=user["headers"])
    assert revoked.status_code == 204
    dead = await client.post(
        "/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert dead.status_code == 401
    remaining = (await client.get("/v1/auth/sessions", headers=user["headers"])).json()
    assert [session["id"] for session in remaining] == [sessions[1]["id"]]
    again = await client.delete(f"/v1/auth/sessions/{newest['id']}", headers=user["headers"])
    assert again.status_code == 404


async def test_other_users_sessions_are_404(client: httpx.AsyncClient) -> None:
    owner = await register_and_login(client)
    intruder = await register_and_login(client)
    session_id = (await client.get("/v1/auth/sessions", headers=owner["headers"])).json()[0]["id"]
    response = await client.delete(f"/v1/auth/sessions/{session_id}", headers=intruder["headers"])
    assert response.status_code == 404
    assert len((await client.get("/v1/auth/sessions", headers=owner["headers"])).json()) == 1
    not_an_id = await client.delete("/v1/auth/sessions/not-a-uuid", headers=owner["headers"])
    assert not_an_id.status_code == 422


async def test_refresh_keeps_the_session_and_logout_ends_it(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    [session] = (await client.get("/v1/auth/sessions", headers=user["headers"])).json()
    pair = (
        await client.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    ).json()
    [same_session] = (await client.get("/v1/auth/sessions", headers=user["headers"])).json()
    assert same_session["id"] == session["id"]
    assert same_session["last_used_at"] >= session["last_used_at"]
    await client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    # Logging out ends the session's access tokens too, not only its refresh token.
    assert (await client.get("/v1/auth/sessions", headers=user["headers"])).status_code == 401
    again = await login(client, user["email"], user["password"])
    [only] = (await client.get("/v1/auth/sessions", headers=bearer(again["access_token"]))).json()
    assert only["id"] != session["id"]


async def test_logout_with_an_unknown_token_is_204(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/logout", json={"refresh_token": "never-issued"})
    assert response.status_code == 204


async def test_protected_endpoints_need_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/users/me"),
        ("GET", "/v1/auth/sessions"),
        ("DELETE", "/v1/auth/sessions/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v1/admin/users"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_admin_users_is_for_admins_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await register_and_login(client)
    forbidden = await client.get("/v1/admin/users", headers=user["headers"])
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    admin = await register_and_login(client, admin_app=app)
    allowed = await client.get("/v1/admin/users", headers=admin["headers"])
    assert allowed.status_code == 200
    emails = [item["email"] for item in allowed.json()["items"]]
    assert emails == [admin["email"], user["email"]]  # newest first


async def test_admin_users_pages_with_a_cursor(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await register_and_login(client, admin_app=app)
    for _ in range(4):
        await client.post(
            "/v1/auth/register", json={"email": unique_email(), "password": STRONG_PASSWORD}
        )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/admin/users", params=params, headers=admin["headers"])
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        assert set(body["items"][0]) == {
            "id",
            "email",
            "role",
            "created_at",
            "email_verified",
            "disabled",
        }
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"cursor": "garbage!"}, {"cursor": "W10"}],
)
async def test_admin_users_refuses_bad_paging(
    client: httpx.AsyncClient, app: FastAPI, params: dict[str, Any]
) -> None:
    admin = await register_and_login(client, admin_app=app)
    response = await client.get("/v1/admin/users", params=params, headers=admin["headers"])
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"][-1] == next(iter(params))


def _counter(metrics_text: str, name: str, result: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.labels == {"result": result}:
                return sample.value
    return 0.0


async def test_logins_and_refreshes_are_counted(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    user = await register_and_login(client)
    await client.post("/v1/auth/login", json={"email": user["email"], "password": "wrong-one-xx"})
    await client.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    await client.post("/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    await client.post("/v1/auth/refresh", json={"refresh_token": "never-issued"})
    after = (await client.get("/metrics")).text
    expected = {
        ("auth_logins", "success"): 1,
        ("auth_logins", "failure"): 1,
        ("auth_refresh", "rotated"): 1,
        ("auth_refresh", "reuse_detected"): 1,
        ("auth_refresh", "invalid"): 1,
    }
    for (name, result), increase in expected.items():
        assert _counter(after, name, result) - _counter(before, name, result) == increase


async def test_sessions_record_the_client_behind_a_trusted_proxy(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    app = await app_harness.start(make_settings(sqlite_url, trusted_proxies="10.0.0.0/8"))
    spoofed = {"X-Forwarded-For": "198.51.100.66"}
    async with AppHarness.client(app, client_ip="10.0.0.5") as via_proxy:
        user = await register_and_login(via_proxy)
        await via_proxy.post(
            "/v1/auth/login",
            json={"email": user["email"], "password": user["password"]},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    async with AppHarness.client(app, client_ip="192.0.2.9") as direct:
        await direct.post(
            "/v1/auth/login",
            json={"email": user["email"], "password": user["password"]},
            headers=spoofed,
        )
        sessions = (await direct.get("/v1/auth/sessions", headers=user["headers"])).json()
    # Newest first: a spoofed header from an untrusted peer is ignored; the proxy's is believed.
    assert [session["ip"] for session in sessions] == ["192.0.2.9", "203.0.113.7", "10.0.0.5"]
    delete_all_rows(sqlite_url)
