"""Database credentials survive rotation without a restart, and the API runs as a
least-privilege role (issue 11, defect 3).

Against a PostgreSQL that, like RDS, takes only TLS and SCRAM passwords, and moto's Secrets
Manager over HTTP: migrations run as the owner and provision the application role; the app
reads that role's credentials from the secret. Rotation is what RDS's rotation function does:
the password changes in the database, then in the secret; pooled connections die (recycling,
failover). Requests keep succeeding after one refused connection attempt; while the database
has the new password and the secret not yet, requests get 503, never 500.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator

import boto3
import httpx
import psycopg
import pytest
from alembic import command
from moto.server import ThreadedMotoServer
from psycopg import sql

from api.database_credentials import MIN_REREAD_SECONDS
from api.database_roles import scram_sha256_verifier
from infra_pulumi.rehearsal.tls_postgres import TlsPostgres, free_port
from tests.api.auth_helpers import register_and_login
from tests.conftest import AppHarness, alembic_config, make_settings

REGION = "eu-west-1"
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def secrets_manager(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # The app signs with the runtime's credentials, as on Lambda (moto accepts any).
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch_module.setenv(name, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


class Deployment:
    """One scratch database on the TLS server, migrated as its owner, and the app role."""

    def __init__(self, server: TlsPostgres, endpoint: str) -> None:
        self.server = server
        self.database = f"slipway_rotation_{uuid.uuid4().hex[:10]}"
        self.role = f"slipway_app_{uuid.uuid4().hex[:10]}"
        self.password = secrets.token_urlsafe(24)
        self.secrets = boto3.client(
            "secretsmanager",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.secret_arn = self.secrets.create_secret(
            Name=f"{self.role}/database-app", SecretString=self._document(self.password)
        )["ARN"]
        with self.admin("postgres") as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        owner_url = server.url(self.database, server.superuser, server.superuser_password)
        config = alembic_config(owner_url)
        config.attributes["database_app_role"] = (self.role, self.password)
        command.upgrade(config, "head")

    def _document(self, password: str) -> str:
        return json.dumps({"engine": "postgres", "username": self.role, "password": password})

    def admin(self, database: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.server.libpq_dsn(database or self.database), autocommit=True)

    def set_database_password(self, password: str) -> None:
        with self.admin() as connection:
            connection.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.role), sql.Literal(scram_sha256_verifier(password))
                )
            )

    def set_secret_password(self, password: str) -> None:
        self.secrets.put_secret_value(
            SecretId=self.secret_arn, SecretString=self._document(password)
        )

    def drop_app_connections(self) -> int:
        """What pool recycling or a failover does to the app's open connections."""
        with self.admin() as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (self.role,),
            ).fetchall()
        return len(rows)

    def refused_logins(self) -> int:
        log = self.server.log_file.read_text(encoding="utf-8", errors="replace")
        return log.count(f'password authentication failed for user "{self.role}"')


@pytest.fixture
def deployment(tls_postgres_server: TlsPostgres, secrets_manager: str) -> Iterator[Deployment]:
    deployed = Deployment(tls_postgres_server, secrets_manager)
    yield deployed
    with deployed.admin("postgres") as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(deployed.database)
            )
        )
        connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(deployed.role)))


async def _start_app(
    harness: AppHarness, deployment: Deployment, endpoint: str
) -> httpx.AsyncClient:
    settings = make_settings(
        deployment.server.url(deployment.database),  # no user: it comes from the secret
        database_secret_arn=deployment.secret_arn,
        aws_region=REGION,
        secrets_manager_endpoint=endpoint,
    )
    app = await harness.start(settings)
    return AppHarness.client(app)


async def test_requests_survive_a_password_rotation_without_a_restart(
    app_harness: AppHarness, deployment: Deployment, secrets_manager: str
) -> None:
    async with await _start_app(app_harness, deployment, secrets_manager) as client:
        user = await register_and_login(client)
        assert (await client.get("/v1/users/me", headers=user["headers"])).status_code == 200
        assert deployment.drop_app_connections() > 0  # the app is connected as its role

        new_password = secrets.token_urlsafe(24)
        deployment.set_database_password(new_password)
        deployment.set_secret_password(new_password)
        deployment.drop_app_connections()
        refused_before = deployment.refused_logins()
        statuses = [
            (await client.get("/v1/users/me", headers=user["headers"])).status_code
            for _ in range(20)
        ]
        assert statuses == [200] * 20
        assert (await client.get("/readyz")).status_code == 200
    # One refused attempt with the old password, then the re-read secret's: never again.
    assert deployment.refused_logins() - refused_before == 1


async def test_between_database_and_secret_updates_requests_get_503_never_500(
    app_harness: AppHarness, deployment: Deployment, secrets_manager: str
) -> None:
    async with await _start_app(app_harness, deployment, secrets_manager) as client:
        user = await register_and_login(client)
        new_password = secrets.token_urlsafe(24)
        deployment.set_database_password(new_password)  # the rotation's setSecret step
        deployment.drop_app_connections()
        during = [await client.get("/v1/users/me", headers=user["headers"]) for _ in range(3)]
        assert [response.status_code for response in during] == [503] * 3
        assert during[0].headers["content-type"] == "application/problem+json"
        assert during[0].headers["retry-after"]
        assert new_password not in during[0].text

        deployment.set_secret_password(new_password)  # finishSecret
        await asyncio.sleep(MIN_REREAD_SECONDS)
        after = await client.get("/v1/users/me", headers=user["headers"])
        assert after.status_code == 200


def test_the_app_role_may_read_and_write_rows_but_not_change_the_schema(
    deployment: Deployment,
) -> None:
    dsn = deployment.server.libpq_dsn(
        deployment.database, user=deployment.role, password=deployment.password
    )
    with psycopg.connect(dsn, autocommit=True) as app:
        app.execute("SELECT count(*) FROM users").fetchone()
        app.execute(
            "INSERT INTO users (id, email, password_hash, role, disabled, created_at) "
            "VALUES (gen_random_uuid(), 'a@example.com', 'x', 'user', false, now())"
        )
        app.execute("UPDATE users SET role = 'user'")
        app.execute("DELETE FROM users")
        for statement in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN extra text",
            "TRUNCATE users",
            "UPDATE alembic_version SET version_num = 'x'",
            "CREATE ROLE other",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
