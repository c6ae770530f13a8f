"""Keys, the bootstrap admin, the admin CLI and password-hash upgrades."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update
from sqlmodel import col

from api.auth import service
from api.auth.__main__ import main as cli_main
from api.auth.keys import (
    KeyConfigurationError,
    development_key,
    load_keyring,
    parse_private_keys,
)
from api.auth.models import User
from api.auth.setup import BootstrapAdminError
from api.db import Database
from api.settings import Settings, get_settings
from tests.api.auth_helpers import (
    NEWEST_KEY_PEM,
    PREVIOUS_KEY_PEM,
    STRONG_PASSWORD,
    login,
    register_and_login,
    unique_email,
)
from tests.conftest import ROOT, AppHarness, delete_all_rows, make_settings


def test_development_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "jwt-dev-key.pem"
    first = development_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert development_key(path) == first
    assert parse_private_keys(first).signing_key.kid
    assert sorted(os.listdir(path.parent)) == ["jwt-dev-key.pem"]  # no temporary files left


def test_without_configured_keys_development_uses_the_key_in_dot_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        app_env="development", database_url="sqlite:///./x.db", jwt_private_keys=None
    )
    keyring = load_keyring(settings)
    assert (tmp_path / ".data" / "jwt-dev-key.pem").exists()
    assert load_keyring(settings).signing_key.kid == keyring.signing_key.kid


def test_configured_keys_sign_with_the_first_and_accept_escaped_newlines() -> None:
    escaped = (NEWEST_KEY_PEM + PREVIOUS_KEY_PEM).replace("\n", "\\n")
    keyring = parse_private_keys(escaped)
    assert keyring.signing_key.kid == parse_private_keys(NEWEST_KEY_PEM).signing_key.kid
    assert [key["kid"] for key in keyring.jwks()["keys"]] == [
        parse_private_keys(NEWEST_KEY_PEM).signing_key.kid,
        parse_private_keys(PREVIOUS_KEY_PEM).signing_key.kid,
    ]


@pytest.mark.parametrize(
    "value",
    [
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        # An RSA key is a valid PEM key of the wrong kind.
        pytest.param("rsa", id="rsa-key"),
    ],
)
def test_unusable_keys_are_refused_without_echoing_them(value: str) -> None:
    if value == "rsa":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        value = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
    with pytest.raises(KeyConfigurationError) as refused:
        parse_private_keys(value)
    assert value not in str(refused.value)
    assert "JWT_PRIVATE_KEYS" in str(refused.value)


async def test_bootstrap_admin_is_created_once(app_harness: AppHarness, database_url: str) -> None:
    email = unique_email("admin")
    settings = make_settings(
        database_url, bootstrap_admin_email=email, bootstrap_admin_password=STRONG_PASSWORD
    )
    try:
        # Two start-ups (a restart, or two containers) with the same settings.
        first = await app_harness.start(settings)
        await app_harness.start(settings)
        async with AppHarness.client(first) as http:
            admin = await login(http, email, STRONG_PASSWORD)
            page = await http.get(
                "/v1/admin/users", headers={"Authorization": f"Bearer {admin['access_token']}"}
            )
        assert page.status_code == 200
        assert [(item["email"], item["role"]) for item in page.json()["items"]] == [
            (email, "admin")
        ]
    finally:
        delete_all_rows(database_url)


async def test_bootstrap_does_not_promote_an_existing_user(
    client: httpx.AsyncClient, app_harness: AppHarness, database_url: str
) -> None:
    user = await register_and_login(client)
    settings = make_settings(
        database_url, bootstrap_admin_email=user["email"], bootstrap_admin_password=STRONG_PASSWORD
    )
    await app_harness.start(settings)
    me = await client.get("/v1/users/me", headers=user["headers"])
    assert me.json()["role"] == "user"
    # Nor does it replace the user's password.
    await login(client, user["email"], user["password"])


def _cli_process(database_url: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "api.auth", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
        check=False,
    )


async def _cli_in_thread(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str]:
    """The CLI's own entry point, minus a new interpreter's start-up (seconds each)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = await asyncio.to_thread(cli_main, list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_cli_creates_an_admin(sqlite_url: str) -> None:
    """The real entry point in a new interpreter (once: start-up takes seconds)."""
    email = unique_email("ops")
    arguments = ("create-admin", "--email", email.upper(), "--password-stdin")
    created = await asyncio.to_thread(_cli_process, sqlite_url, *arguments, stdin=STRONG_PASSWORD)
    assert created.returncode == 0, created.stderr
    assert STRONG_PASSWORD not in created.stdout + created.stderr
    database = Database(sqlite_url)
    try:
        async with database.sessions() as db:
            admin = await service.authenticate(db, email, STRONG_PASSWORD)
        assert admin.role == "admin"
    finally:
        await database.dispose()
        delete_all_rows(sqlite_url)


async def test_cli_refuses_duplicates_and_weak_passwords_and_disables_users(
    client: httpx.AsyncClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APP_ENV", "test")
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # settings read from this test's environment
    user = await register_and_login(client)

    duplicate = await _cli_in_thread(
        monkeypatch,
        capsys,
        "create-admin",
        "--email",
        user["email"],
        "--password-stdin",
        stdin=STRONG_PASSWORD,
    )
    assert duplicate[0] == 1
    assert "already registered" in duplicate[1]
    weak = await _cli_in_thread(
        monkeypatch,
        capsys,
        "create-admin",
        "--email",
        unique_email(),
        "--password-stdin",
        stdin="short",
    )
    assert weak[0] == 1
    assert "12 characters" in weak[1]
    assert "short" not in weak[1].replace("characters", "")

    disabled = await _cli_in_thread(monkeypatch, capsys, "disable-user", "--email", user["email"])
    assert disabled[0] == 0, disabled[1]
    assert (await client.get("/v1/users/me", headers=user["headers"])).status_code == 401
    relogin = await client.post(
        "/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert relogin.status_code == 401
    unknown = await _cli_in_thread(monkeypatch, capsys, "disable-user", "--email", unique_email())
    assert unknown[0] == 1


async def test_outdated_password_hashes_are_upgraded_at_login(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_and_login(client)
    legacy_hash = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1).hash(user["password"])
    async with app.state.database.sessions() as db:
        await db.execute(
            update(User).where(col(User.email) == user["email"]).values(password_hash=legacy_hash)
        )
        await db.commit()

    await login(client, user["email"], user["password"])

    async with app.state.database.sessions() as db:
        upgraded = await db.scalar(
            select(col(User.password_hash)).where(col(User.email) == user["email"])
        )
    assert upgraded != legacy_hash
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    await login(client, user["email"], user["password"])  # the new hash verifies


@pytest.mark.parametrize(
    ("email", "password", "named"),
    [
        (unique_email("admin"), "1qaz2wsx3edc", "BOOTSTRAP_ADMIN_PASSWORD"),
        ("not-an-email", STRONG_PASSWORD, "BOOTSTRAP_ADMIN_EMAIL"),
    ],
    # Stable ids (the email is random): `pytest --lf` and parallel workers find the same test.
    ids=["weak-password", "malformed-email"],
)
async def test_unusable_bootstrap_admin_settings_stop_the_start_up(
    app_harness: AppHarness, sqlite_url: str, email: str, password: str, named: str
) -> None:
    settings = make_settings(
        sqlite_url, bootstrap_admin_email=email, bootstrap_admin_password=password
    )
    with pytest.raises(BootstrapAdminError) as refused:
        await app_harness.start(settings)
    assert named in str(refused.value)
    assert password not in str(refused.value)
