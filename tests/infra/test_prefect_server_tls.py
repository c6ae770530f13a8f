"""The Prefect server task reaches RDS over verified TLS (issue 11, defect 2).

The task definition is read from the mocked prod stack and run for real: its `create-database`
container, then `prefect server start`, with exactly the task's command, environment and
secrets, only the endpoints swapped for local ones (RDS -> a TLS-only PostgreSQL whose
certificate comes from a throwaway CA; the image's CA bundle path -> that CA). The server must
migrate its database and answer the target group's health check. Prefect 3.9 verifies the
server certificate whenever TLS is enabled, against the system trust store unless a CA file is
configured, and the RDS CA is in no system trust store.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from infra_pulumi.components._containers import RDS_CA_BUNDLE
from infra_pulumi.plan import Plan
from infra_pulumi.rehearsal.containers import (
    local_command,
    local_environment,
    split_reference,
    start,
    task_containers,
)
from infra_pulumi.rehearsal.tls_postgres import TlsPostgres, free_port
from tests.infra.conftest import ROOT, one

DOCKERFILE = ROOT / "Dockerfile.flows"
RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
HEALTH_TIMEOUT_SECONDS = 90


def _runtime_stage(text: str) -> str:
    return text.split(" AS runtime", 1)[1]


def test_the_flows_image_ships_the_rds_ca_bundle_pinned_by_checksum() -> None:
    runtime = _runtime_stage(DOCKERFILE.read_text(encoding="utf-8"))
    # One instruction, continuation lines joined.
    instructions = re.sub(r"\\\n\s*", " ", runtime).splitlines()
    added = [line for line in instructions if line.startswith("ADD ") and RDS_CA_URL in line]
    assert len(added) == 1, "the runtime stage must ADD AWS's RDS global bundle once"
    parts = added[0].split()
    assert any(re.fullmatch(r"--checksum=sha256:[0-9a-f]{64}", part) for part in parts), (
        "a remote ADD without --checksum trusts whatever the URL serves at build time"
    )
    assert "--chmod=644" in parts  # readable by the non-root user
    assert parts[-2:] == [RDS_CA_URL, RDS_CA_BUNDLE]


def test_the_prefect_server_runs_the_flows_image_and_verifies_rds_with_its_bundle(
    prod: Plan,
) -> None:
    containers = {c.name: c for c in task_containers(prod, "-prefect-server")}
    repository = str(one(prod, "aws:ecr/repository:Repository", "flows-flows").props["name"])
    for container in containers.values():
        # The image the CA bundle is in, at the worker's Prefect version (the lock's).
        assert f"/{repository}:" in container.image
    server = containers["prefect-server"].environment
    assert server["PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED"] == "true"
    assert server["PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE"] == RDS_CA_BUNDLE
    assert "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME" not in server
    create = containers["create-database"].environment
    assert create["PGSSLMODE"] == "verify-full"
    assert create["PGSSLROOTCERT"] == RDS_CA_BUNDLE


def test_the_prefect_server_task_migrates_and_serves_over_verified_tls(
    prod: Plan, tls_postgres_server: TlsPostgres, tmp_path: Path
) -> None:
    database = tls_postgres_server
    instance = one(prod, "aws:rds/instance:Instance")
    containers = {c.name: c for c in task_containers(prod, "-prefect-server")}
    port = free_port()
    swaps = {
        str(instance.props["address"]): database.host,
        "5432": str(database.port),
        RDS_CA_BUNDLE: str(database.ca_file),
        "0.0.0.0": "127.0.0.1",  # noqa: S104 - the task's listen address, made local
        str(containers["prefect-server"].port): str(port),
    }
    master = {"username": database.superuser, "password": database.superuser_password}

    def resolve(reference: str) -> str:
        arn, key = split_reference(reference)
        assert arn in str(instance.props["masterUserSecrets"]), reference
        return master[key]

    home = tmp_path / "home"
    home.mkdir()
    create = containers["create-database"]
    created = subprocess.run(
        local_command(create, swaps),
        env=local_environment(create, resolve, swaps, home),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr

    server = containers["prefect-server"]
    environment = local_environment(server, resolve, swaps, home)
    # The image's own ENV (Dockerfile.flows) points PREFECT_HOME inside the image.
    environment["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    log = tmp_path / "prefect-server.log"
    process = start(local_command(server, swaps), environment, ROOT, log)
    try:
        healthy = _wait_healthy(f"http://127.0.0.1:{port}/api/health", process)
        assert healthy, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    name = server.environment["PREFECT_SERVER_DATABASE_NAME"]
    with psycopg.connect(database.libpq_dsn(name)) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone() or (
            None,
        )
    assert revision, "Prefect's migrations did not run"


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False  # crashed, as the task would crash-loop
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


pytestmark = pytest.mark.postgres
