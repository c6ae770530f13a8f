"""The Prefect server task reaches RDS over verified TLS (issue 11, defect 2): the image has
the RDS CA bundle and the task points Prefect and psql at it.

Prefect 3.9 verifies the server certificate whenever TLS is enabled, against the system trust
store unless a CA file is configured, and the RDS CA is in no system trust store. The task
itself runs for real in tests/infra/test_rehearsal.py (make infra-rehearse): with its exact
environment against a TLS-only PostgreSQL whose certificate comes from a throwaway CA, it must
migrate and answer its health check.
"""

from __future__ import annotations

import re

import pytest

from infra_pulumi.components._containers import RDS_CA_BUNDLE
from infra_pulumi.plan import Plan
from infra_pulumi.rehearsal.containers import (
    task_containers,
)
from tests.infra.conftest import ROOT, one

RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
HEALTH_TIMEOUT_SECONDS = 90


def _runtime_stage(text: str) -> str:
    return text.split(" AS runtime", 1)[1]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.flows", "Dockerfile"])
def test_the_images_ship_the_rds_ca_bundle_pinned_by_checksum(dockerfile: str) -> None:
    runtime = _runtime_stage((ROOT / dockerfile).read_text(encoding="utf-8"))
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


@pytest.mark.parametrize("family", ["-api", "-migrate"])
def test_the_api_image_tasks_verify_rds_with_the_bundle(prod: Plan, family: str) -> None:
    # The bootstrap then builds a verify-full URL (tests/infra/test_bootstrap.py).
    container = task_containers(prod, family)[0]
    assert container.environment["DATABASE_CA_FILE"] == RDS_CA_BUNDLE
