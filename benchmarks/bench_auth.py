"""Authentication throughput (issue 3): one uvicorn worker each, loaded side by side with wrk.

  bare        FastAPI hello endpoint, no middleware (benchmarks/bare_app.py)
  me          GET /v1/users/me from create_app: the whole middleware stack, ES256 verification
              and the user's primary-key lookup (SQLite, and PostgreSQL when reachable)
  login       POST /v1/auth/login with a correct password: argon2id verification, a new
              session row and a signed access token

Login is bounded by argon2 by design (about 25 ms of CPU per attempt with OWASP's parameters);
its ratio shows what one worker can absorb, not a target. Rate-limit quotas are raised out of
reach (auth_policies.toml) so every request is admitted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from api.auth.keys import generate_private_key_pem
from benchmarks.harness import ROOT, Result, load, print_table, serve

HERE = Path(__file__).resolve().parent
PASSWORD = "benchmark-password-not-common-42"  # noqa: S105 - a throwaway benchmark account
EMAIL = "bench@example.com"
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def _scratch_postgres() -> str | None:
    """A fresh database on the test server, or None when PostgreSQL is not reachable."""
    admin_dsn = make_url(TEST_DATABASE_URL).set(drivername="postgresql")
    name = f"slipway_bench_{os.getpid()}"
    try:
        with psycopg.connect(
            admin_dsn.render_as_string(hide_password=False), autocommit=True, connect_timeout=3
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres(url: str) -> None:
    admin_dsn = make_url(TEST_DATABASE_URL).set(drivername="postgresql")
    with psycopg.connect(admin_dsn.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def _bench_backend(label: str, database_url: str, keys: str) -> list[Result]:
    _migrate(database_url)
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "JWT_PRIVATE_KEYS": keys,
        "RATE_LIMITS_FILE": str(HERE / "auth_policies.toml"),
        "REDIS_URL": "",
    }
    credentials = json.dumps({"email": EMAIL, "password": PASSWORD})
    with serve("api.main:app", env, ready_path="/healthz") as url:
        account = {"email": EMAIL, "password": PASSWORD}
        httpx.post(url + "/v1/auth/register", json=account, timeout=30).raise_for_status()
        login = httpx.post(url + "/v1/auth/login", json=account, timeout=30)
        login.raise_for_status()
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = load(f"slipway GET /v1/users/me ({label})", url + "/v1/users/me", headers=bearer)
        logins = load(
            f"slipway POST /v1/auth/login ({label})",
            url + "/v1/auth/login",
            method="POST",
            body=credentials,
            headers={"Content-Type": "application/json"},
        )
    return [me, logins]


def main() -> None:
    keys = generate_private_key_pem()
    results: list[Result] = []
    with serve("benchmarks.bare_app:app") as url:
        results.append(load("bare FastAPI hello", url + "/hello"))
    with tempfile.TemporaryDirectory() as database_dir:
        sqlite_url = f"sqlite+aiosqlite:///{database_dir}/bench.db"
        results += _bench_backend("SQLite", sqlite_url, keys)
    postgres_url = _scratch_postgres()
    if postgres_url is None:
        print("PostgreSQL at TEST_DATABASE_URL is unreachable: its rows are skipped")
    else:
        try:
            results += _bench_backend("PostgreSQL", postgres_url, keys)
        finally:
            _drop_postgres(postgres_url)
    print_table("Authentication: throughput against a bare FastAPI app", results)


if __name__ == "__main__":
    main()
