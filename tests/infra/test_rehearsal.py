"""`make infra-rehearse` for staging, prod and dev, as CI runs it: every task of each stack runs
locally against local counterparts and must be healthy (issue 11). Dev is here because its
Lambda function and migration task run staging's strict settings without staging's cache: only
a real start shows that they accept the stack's environment.

This is also where the Prefect server task proves it reaches PostgreSQL over verified TLS
(defect 2): with the task's exact environment, against a TLS-only server whose certificate
comes from a throwaway CA, it must migrate and answer its target group's health check. Without
`..._TLS_CA_FILE` its line reads `unhealthy: crashed ... CERTIFICATE_VERIFY_FAILED`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.infra.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TIMEOUT_SECONDS = 300  # per stack; each measures itself on its last line
# The stacks that must rehearse cleanly in CI, all at once (dev: the migration task and the
# Lambda function only).
STACKS = ("staging", "prod", "dev")


def test_every_task_of_every_stack_is_healthy(redis_url: str) -> None:
    # Bytecode caching on: pulumi_aws compiles megabytes of generated code otherwise.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["REHEARSAL_REDIS_URL"] = redis_url
    runs = {
        stack: subprocess.Popen(
            [sys.executable, "-m", "infra_pulumi.rehearsal.tasks", "--stack", stack],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stack in STACKS
    }
    reports = {}
    for stack, process in runs.items():
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        reports[stack] = (process.returncode, stdout, stderr)
    for stack, (code, stdout, stderr) in reports.items():
        lines = stdout.strip().splitlines()
        assert code == 0, f"{stack}:\n{stdout}\n{stderr[-3000:]}"
        assert lines[-1].startswith(f"{len(lines) - 1} healthy, 0 unhealthy ({stack},")
        assert any(f"slipway-{stack}-migrate: exited 0" in line for line in lines), stdout
        if stack == "dev":
            (api,) = [line for line in lines if line.startswith("slipway-dev-api:")]
            assert "healthy in" in api, stdout
            assert "/healthz and /readyz events" in api, stdout
            continue
        (prefect,) = [line for line in lines if line.startswith(f"slipway-{stack}-prefect-server:")]
        assert "healthy in" in prefect, stdout
