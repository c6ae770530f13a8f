"""What the stack gives the flows to run in AWS: the registration task the deploy job runs, the
reports bucket, the git token's secret (without a value) and the worker's settings for them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra_pulumi.plan import Plan
from tests.infra.conftest import of_type, one

TASK = "aws:ecs/taskDefinition:TaskDefinition"
BUCKET = "aws:s3/bucket:Bucket"


def _containers(plan: Plan, name: str) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = json.loads(
        one(plan, TASK, name).props["containerDefinitions"]
    )
    return containers


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_registration_task_runs_flows_deploy_in_the_flows_image(
    stack: str, plans: dict[str, Plan]
) -> None:
    plan = plans[stack]
    task = one(plan, TASK, "flows-register-flows").props
    (container,) = _containers(plan, "flows-register-flows")
    assert plan.outputs["flowsRegistrationTaskFamily"] == task["family"]
    assert container["name"] == "register-flows"
    assert container["command"] == ["python", "-m", "flows", "deploy"]
    assert container["image"].startswith(plan.outputs["flowsEcrRepositoryUrl"] + ":")
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["FLOWS_IMAGE_TAG"] == container["image"].rsplit(":", 1)[1]
    assert env["BACKUP_BUCKET"] == plan.outputs["backupBucket"]
    assert "PREFECT_API_URL" not in env  # the deploy job's override: the server's address
    assert "secrets" not in container  # registration reads no secret...
    role = one(plan, "aws:iam/role:Role", "flows-flows-registration").props["arn"]
    assert task["taskRoleArn"] == role
    # ...and may do nothing in AWS.
    assert not [
        p for p in of_type(plan, "aws:iam/rolePolicy:RolePolicy") if p.props["role"] == role
    ]
    # It runs where the worker runs: private subnets, the group the server admits.
    network = json.loads(plan.outputs["flowsRunTaskNetwork"])["awsvpcConfiguration"]
    worker_service = one(plan, "aws:ecs/service:Service", "flows-prefect-worker").props
    worker_network = worker_service["networkConfiguration"]
    assert network["securityGroups"] == worker_network["securityGroups"]
    assert network["subnets"] == worker_network["subnets"]
    assert network["assignPublicIp"] == "DISABLED"


def test_reports_have_an_encrypted_lifecycle_managed_bucket_of_their_own(prod: Plan) -> None:
    bucket = prod.outputs["reportsBucket"]
    assert bucket != prod.outputs["backupBucket"]
    (resource,) = [r for r in of_type(prod, BUCKET) if r.props.get("bucket") == bucket]
    encryption = one(
        prod,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "storage-reports",
    ).props["rules"][0]["applyServerSideEncryptionByDefault"]
    assert encryption["sseAlgorithm"] == "aws:kms"
    lifecycle = one(
        prod, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "storage-reports"
    ).props["rules"][0]
    assert lifecycle["expiration"]["days"] >= 365  # a year of weekly trends
    assert resource.name == "storage-reports"


def test_the_worker_keeps_reports_clones_with_the_token_and_notifies_pages(prod: Plan) -> None:
    (worker,) = _containers(prod, "flows-prefect-worker")
    env = {e["name"]: e["value"] for e in worker["environment"]}
    secret = one(prod, "aws:secretsmanager/secret:Secret", "flows-tech-debt-git-token").props
    pages = one(prod, "aws:sns/topic:Topic", "observability-pages").props["arn"]
    assert env["FLOWS_REPORTS_BUCKET"] == prod.outputs["reportsBucket"]
    assert env["TECH_DEBT_REPO_URL"].startswith("https://github.com/")
    assert env["TECH_DEBT_GIT_TOKEN_SECRET_ARN"] == secret["arn"]
    # The tracking issue lives in the repository tech-debt clones, updated with the same token.
    assert env["TECH_DEBT_REPO_URL"] == f"https://github.com/{env['GITHUB_REPOSITORY']}.git"
    assert env["FLOWS_ALERTS_TOPIC_ARN"] == pages
    assert env["FLOWS_STACK"] == "slipway-prod"
    assert env["PREFECT_UI_URL"] == prod.outputs["prefectUiUrl"]
    # The token is put there by an operator: no value in the stack or its state.
    assert not of_type(prod, "aws:secretsmanager/secretVersion:SecretVersion") or all(
        version.props["secretId"] != secret["arn"]
        for version in of_type(prod, "aws:secretsmanager/secretVersion:SecretVersion")
    )
    assert secret["kmsKeyId"] == one(prod, "aws:kms/key:Key").props["arn"]
