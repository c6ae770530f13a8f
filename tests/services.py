"""Reaching the machine's PostgreSQL and Redis from tests (docs/reference.md#commands).

An unreachable service skips the tests that need it, with the reason, except under CI=true,
where it fails them: CI must never pass by skipping the real thing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import NoReturn

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def use_fake_aws_credentials(patch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so no test can ever sign a request with real ones."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be reachable)")
    pytest.skip(reason)


def require_command(name: str, package: str) -> str:
    """The path of a program the tests run; missing, it skips (fails under CI=true)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {package}; `make system-deps`)")
    return path


def _libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_scratch_postgres_database() -> str:
    """A new, empty database on the test server; its name is unique to this run."""
    admin_dsn = _libpq_dsn(TEST_DATABASE_URL)
    name = f"slipway_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {exc}")
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq_dsn(TEST_DATABASE_URL), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_postgres() -> str:
    try:
        psycopg.connect(_libpq_dsn(TEST_DATABASE_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {exc}")
    return TEST_DATABASE_URL


def require_redis() -> str:
    try:
        client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        unavailable(f"Redis at TEST_REDIS_URL is unreachable: {exc}")
    return TEST_REDIS_URL
