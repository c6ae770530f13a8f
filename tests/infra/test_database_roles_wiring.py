"""The stack runs the API as its own role with a rotated secret, and keeps the master
credentials to the migrations (issue 11, defect 3; the behaviour itself is exercised against
PostgreSQL and moto in tests/api/test_database_credentials.py)."""

from __future__ import annotations

import json

import pytest

from infra_pulumi.components.database import APP_USERNAME
from infra_pulumi.plan import Plan
from infra_pulumi.rehearsal.containers import task_containers
from tests.infra.conftest import collect, of_type, one, run_offline

SECRET = "aws:secretsmanager/secret:Secret"
LAMBDA = "aws:lambda/function:Function"


def _app_secret_arn(plan: Plan) -> str:
    return str(one(plan, SECRET, "database-app").props["arn"])


def _master_secret_arn(plan: Plan) -> str:
    return str(one(plan, "aws:rds/instance:Instance").props["masterUserSecrets"][0]["secretArn"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_app_secret_starts_as_the_rotation_function_expects_and_rotates(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    version = next(
        r
        for r in of_type(plan, "aws:secretsmanager/secretVersion:SecretVersion")
        if r.name == "database-app"
    )
    document = json.loads(version.props["secretString"])
    assert document["username"] == APP_USERNAME
    assert {"engine", "host", "port", "dbname", "password"} <= set(document)
    rotation = one(plan, "aws:secretsmanager/secretRotation:SecretRotation", "database-app")
    assert rotation.props["rotationRules"]["automaticallyAfterDays"] <= 30
    function = one(plan, "aws:serverlessrepository/cloudFormationStack:CloudFormationStack").props
    assert function["applicationId"].endswith("SecretsManagerRDSPostgreSQLRotationSingleUser")


def test_the_api_reads_only_its_role_secret_and_the_migrations_the_master(prod: Plan) -> None:
    app_arn, master_arn = _app_secret_arn(prod), _master_secret_arn(prod)
    (api, _adot) = task_containers(prod, "-api")
    assert api.environment["DATABASE_SECRET_ARN"] == app_arn
    assert not any(master_arn in reference for reference in api.secrets.values())
    (migrate,) = task_containers(prod, "-migrate")
    assert migrate.secrets["DATABASE_USER"] == f"{master_arn}:username::"
    assert migrate.secrets["DATABASE_APP_USER"] == f"{app_arn}:username::"
    assert migrate.secrets["DATABASE_APP_PASSWORD"] == f"{app_arn}:password::"
    assert "DATABASE_SECRET_ARN" not in migrate.environment
    policies = json.dumps(
        [r.props for r in of_type(prod, "aws:iam/rolePolicy:RolePolicy") if "api-task" in r.name]
    )
    assert app_arn in policies
    assert master_arn not in policies


@pytest.fixture(scope="module")
def lambda_plan(plans: dict[str, Plan]) -> Plan:
    """A stack with the Lambda runtime (dev), or staging built with it."""
    for plan in plans.values():
        if of_type(plan, LAMBDA):
            return plan
    return collect(run_offline("staging", "slipway:apiRuntime=lambda"))


def test_the_lambda_reads_its_role_secret_at_run_time_not_the_master(lambda_plan: Plan) -> None:
    (function,) = of_type(lambda_plan, LAMBDA)
    variables = function.props["environment"]["variables"]
    assert variables["DATABASE_SECRET_ARN"] == _app_secret_arn(lambda_plan)
    assert _master_secret_arn(lambda_plan) not in variables["SECRET_ARNS"]
