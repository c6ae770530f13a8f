"""The deploy jobs migrate the database before rolling out the API, and the migration step fails
the job unless the one-off task exits 0.

`.github/scripts/run-migration.sh` runs against a stand-in `aws` executable on PATH that
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

SCRIPT = GITHUB_DIR / "scripts" / "run-migration.sh"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-prod-api:abc123"
TASK_DEFINITION = "arn:aws:ecs:eu-west-1:123456789012:task-definition/slipway-prod-migrate:7"
TASK = "arn:aws:ecs:eu-west-1:123456789012:task/slipway-prod/0123456789abcdef"
NETWORK = json.dumps(
    {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a"],
            "securityGroups": ["sg-app"],
            "assignPublicIp": "DISABLED",
        }
    }
)


def run_migration(
    tmp_path: Path, replies: dict[str, str], **overrides: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    env = {
        "CLUSTER": "slipway-prod",
        "TASK_FAMILY": "slipway-prod-migrate",
        "NETWORK_CONFIGURATION": NETWORK,
        "EXPECTED_IMAGE": IMAGE,
        **overrides,
    }
    return run_script(SCRIPT, tmp_path, replies, env)


def replies(exit_code: str = "0", image: str = IMAGE) -> dict[str, str]:
    return {
        "ecs describe-task-definition": f"{TASK_DEFINITION}\t{image}",
        "ecs run-task": TASK,
        "ecs wait": "",
        "ecs describe-tasks": f"{exit_code}\tEssential container in task exited",
    }


def test_a_successful_migration_runs_the_new_revision_in_the_stack_network(tmp_path: Path) -> None:
    result, calls = run_migration(tmp_path, replies())
    assert result.returncode == 0, result.stdout + result.stderr
    (run_task,) = [c for c in calls if c[:2] == ["ecs", "run-task"]]
    assert option(run_task, "--cluster") == "slipway-prod"
    assert option(run_task, "--task-definition") == TASK_DEFINITION
    assert option(run_task, "--launch-type") == "FARGATE"
    assert json.loads(option(run_task, "--network-configuration")) == json.loads(NETWORK)
    (wait,) = [c for c in calls if c[:3] == ["ecs", "wait", "tasks-stopped"]]
    assert option(wait, "--tasks") == TASK
    assert calls[-1][:2] == ["ecs", "describe-tasks"]


@pytest.mark.parametrize("exit_code", ["1", "None"])
def test_a_failed_or_never_started_migration_fails_the_step(tmp_path: Path, exit_code: str) -> None:
    result, _ = run_migration(tmp_path, replies(exit_code=exit_code))
    assert result.returncode != 0
    assert "::error::migration failed" in result.stdout
    assert "0123456789abcdef" in result.stdout  # where to find the logs


def test_a_stale_task_definition_is_not_run(tmp_path: Path) -> None:
    stale = IMAGE.replace(":abc123", ":previous")
    result, calls = run_migration(tmp_path, replies(image=stale))
    assert result.returncode != 0
    assert "expected " + IMAGE in result.stdout
    assert not [c for c in calls if c[:2] == ["ecs", "run-task"]]


def test_a_task_that_never_stops_fails_after_the_allowed_waits(tmp_path: Path) -> None:
    result, calls = run_migration(tmp_path, {**replies(), "ecs wait": "FAIL"}, WAIT_ROUNDS="2")
    assert result.returncode != 0
    assert len([c for c in calls if c[:2] == ["ecs", "wait"]]) == 2
    assert not [c for c in calls if c[:2] == ["ecs", "describe-tasks"]]


def test_missing_stack_outputs_stop_before_any_call(tmp_path: Path) -> None:
    result, calls = run_migration(tmp_path, replies(), TASK_FAMILY="")
    assert result.returncode != 0
    assert calls == []


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


@pytest.mark.parametrize("job_id", ["deploy-staging", "deploy-prod"])
def test_deploy_jobs_migrate_between_the_targeted_and_the_full_pulumi_up(job_id: str) -> None:
    steps = _steps(load_workflow(WORKFLOWS_DIR / "deploy.yml").jobs[job_id])
    uses = [str(step.get("uses", "")) for step in steps]
    runs = [str(step.get("run", "")) for step in steps]
    push = runs.index(".github/scripts/push-image.sh")
    migrate = runs.index(".github/scripts/run-migration.sh")
    ups = [i for i, u in enumerate(uses) if u.startswith("pulumi/actions@")]
    assert len(ups) == 2
    targeted, full = ups
    assert push < targeted < migrate < full
    assert steps[targeted]["with"]["target"] == "**::compute-migrate"
    assert "target" not in steps[full]["with"]
    assert steps[targeted]["with"]["config-map"] == steps[full]["with"]["config-map"]
    env = steps[migrate]["env"]
    step_id = steps[targeted]["id"]
    for variable, output in [
        ("CLUSTER", "clusterName"),
        ("TASK_FAMILY", "migrationTaskFamily"),
        ("NETWORK_CONFIGURATION", "runTaskNetwork"),
    ]:
        assert env[variable] == f"${{{{ steps.{step_id}.outputs.{output} }}}}"
    assert env["EXPECTED_IMAGE"] == "${{ vars.ECR_REPOSITORY_URL }}:${{ github.sha }}"
