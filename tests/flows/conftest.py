"""Fixtures for the flow tests: a moto S3/KMS server over real HTTP (pg_dump streams into it
the way it would into AWS) and an AWS environment that can only reach it, the session's one
Prefect server, and a PostgreSQL database with known tables to back up and restore."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from flows.backup.postgres import Connection
from tests.conftest import delete_all_rows
from tests.live_server import free_port
from tests.services import (
    create_scratch_postgres_database,
    drop_postgres_database,
    unavailable,
    use_fake_aws_credentials,
)

MOTO_START_TIMEOUT_SECONDS = 30


def _moto_server_command() -> str | None:
    beside_python = Path(sys.executable).parent / "moto_server"
    return str(beside_python) if beside_python.exists() else shutil.which("moto_server")


@pytest.fixture(autouse=True)
def no_github(monkeypatch: pytest.MonkeyPatch) -> None:
    """No flow test reaches the real GitHub, whatever the shell (or CI: GITHUB_REPOSITORY) sets:
    tech-debt's tracking issue is configured only by the tests that point it at the stub."""
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Fake credentials, so no test can ever sign a request with real ones."""
    with pytest.MonkeyPatch.context() as patch:
        use_fake_aws_credentials(patch)
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`moto_server` on a free loopback port, once per session."""
    command = _moto_server_command()
    if command is None:
        unavailable("moto_server is not installed (moto[server] in the dev group)")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    deadline = time.monotonic() + MOTO_START_TIMEOUT_SECONDS
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"moto_server did not start on port {port}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """A temporary Prefect server and database for the whole session (about 20 s): the one
    Prefect server the suite starts. Yields its API URL, for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def recording_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Flows record their outcome in the API's DATABASE_URL: point it at the test database,
    and leave it empty for the next test."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    yield sqlite_url
    delete_all_rows(sqlite_url)


SOURCE_TABLES = {"public.customers": 3, "billing.invoices": 5, "public.empty": 0}


@pytest.fixture(scope="module")
def source_database() -> Iterator[str]:
    url = create_scratch_postgres_database()
    connection = Connection.from_url(url)
    try:
        with connection.connect() as database:
            database.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
            database.execute("INSERT INTO customers VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')")
            database.execute("CREATE SCHEMA billing")
            database.execute(
                "CREATE TABLE billing.invoices (id serial PRIMARY KEY, "
                "customer_id int REFERENCES customers (id), cents bigint)"
            )
            database.execute(
                "INSERT INTO billing.invoices (customer_id, cents) "
                "SELECT 1 + n % 3, n * 100 FROM generate_series(1, 5) AS n"
            )
            database.execute("CREATE TABLE empty (id int)")
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"slipway-backups-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def kms_key_id(moto_endpoint: str) -> str:
    kms = boto3.client("kms", endpoint_url=moto_endpoint)
    key_id: str = kms.create_key(Description="slipway backup test")["KeyMetadata"]["KeyId"]
    return key_id
