"""The deploy jobs register the flows' deployments after `pulumi up`, from inside the VPC, and
fail when registration fails.

`.github/scripts/register-flows.sh` runs against a stand-in `aws` executable on PATH that
answers like the AWS CLI (text output) and records its calls.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.fake_aws import option, run_script
from tests.delivery.workflows import GITHUB_DIR, WORKFLOWS_DIR, load_workflow

SCRIPT = GITHUB_DIR / "scripts" / "register-flows.sh"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-prod-flows:abc123"
TASK_DEFINITION = "arn:aws:ecs:eu-west-1:123456789012:task-definition/slipway-prod-register-flows:3"
SERVER_TASK = "arn:aws:ecs:eu-west-1:123456789012:task/slipway-prod/feedface"
TASK = "arn:aws:ecs:eu-west-1:123456789012:task/slipway-prod/0123456789abcdef"
NETWORK = json.dumps(
    {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a"],
            "securityGroups": ["sg-worker"],
            "assignPublicIp": "DISABLED",
        }
    }
)


def replies(
    exit_code: str = "0", server: str = SERVER_TASK, ip: str = "10.0.3.17"
) -> dict[str, str]:
    return {
        "ecs list-tasks": server,
        "ecs describe-tasks#privateIPv4Address": ip,
        "ecs describe-task-definition": f"{TASK_DEFINITION}\t{IMAGE}",
        "ecs run-task": TASK,
        "ecs wait": "",
        "ecs describe-tasks": f"{exit_code}\tEssential container in task exited",
    }


def register(
    tmp_path: Path, answers: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    env = {
        "CLUSTER": "slipway-prod",
        "TASK_FAMILY": "slipway-prod-register-flows",
        "NETWORK_CONFIGURATION": NETWORK,
        "EXPECTED_IMAGE": IMAGE,
    }
    return run_script(SCRIPT, tmp_path, answers, env)


def test_registration_runs_in_the_vpc_against_the_servers_address(tmp_path: Path) -> None:
    result, calls = register(tmp_path, replies())

    assert result.returncode == 0, result.stdout + result.stderr
    (listing,) = [c for c in calls if c[:2] == ["ecs", "list-tasks"]]
    assert option(listing, "--service-name") == "prefect-server"
    (address,) = [c for c in calls if "privateIPv4Address" in " ".join(c)]
    assert option(address, "--tasks") == SERVER_TASK
    # The task's network interface, whatever other attachments (Service Connect) it has.
    assert "attachments[?type=='ElasticNetworkInterface']" in option(address, "--query")
    (run_task,) = [c for c in calls if c[:2] == ["ecs", "run-task"]]
    assert option(run_task, "--task-definition") == TASK_DEFINITION
    assert json.loads(option(run_task, "--network-configuration")) == json.loads(NETWORK)
    overrides = json.loads(option(run_task, "--overrides"))
    (container,) = overrides["containerOverrides"]
    assert container == {
        "name": "register-flows",
        "environment": [{"name": "PREFECT_API_URL", "value": "http://10.0.3.17:4200/api"}],
    }
    exit_check = calls[-1]
    assert exit_check[:2] == ["ecs", "describe-tasks"]
    assert "register-flows" in option(exit_check, "--query")
    assert "flows registration succeeded" in result.stdout


def test_a_failed_registration_fails_the_job(tmp_path: Path) -> None:
    result, _ = register(tmp_path, replies(exit_code="2"))

    assert result.returncode != 0
    assert "::error::flows registration failed (exit code 2" in result.stdout


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (replies(server="None"), "no running prefect-server task"),
        (replies(ip="None"), "has no private IPv4 address"),
    ],
)
def test_no_server_to_register_with_stops_before_any_task(
    tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    result, calls = register(tmp_path, answers)

    assert result.returncode != 0
    assert message in result.stdout
    assert not [c for c in calls if c[:2] == ["ecs", "run-task"]]


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


@pytest.mark.parametrize("job_id", ["deploy-staging", "deploy-prod"])
def test_deploy_jobs_register_the_flows_after_the_full_pulumi_up(job_id: str) -> None:
    steps = _steps(load_workflow(WORKFLOWS_DIR / "deploy.yml").jobs[job_id])
    runs = [str(step.get("run", "")) for step in steps]
    uses = [str(step.get("uses", "")) for step in steps]
    register_index = runs.index(".github/scripts/register-flows.sh")
    full_up = max(i for i, u in enumerate(uses) if u.startswith("pulumi/actions@"))
    assert full_up < register_index
    assert "target" not in steps[full_up]["with"]
    step_id = steps[full_up]["id"]
    env = steps[register_index]["env"]
    for variable, output in [
        ("CLUSTER", "clusterName"),
        ("TASK_FAMILY", "flowsRegistrationTaskFamily"),
        ("NETWORK_CONFIGURATION", "flowsRunTaskNetwork"),
    ]:
        assert env[variable] == f"${{{{ steps.{step_id}.outputs.{output} }}}}"
    assert env["EXPECTED_IMAGE"] == (
        f"${{{{ steps.{step_id}.outputs.flowsEcrRepositoryUrl }}}}:${{{{ github.sha }}}}"
    )
