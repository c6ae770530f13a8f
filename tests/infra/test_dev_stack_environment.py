"""What a dev stack's API and migration task are told about the stack they run in.

A dev stack has no cache and no NAT gateway, yet its API runs with staging's strict settings:
it declares the in-process rate limiter (RATE_LIMITS_SHARED=false) so that settings accept the
missing REDIS_URL, and, while SES is out of reach, lets unverified users log in. Staging and
prod declare neither: a missing REDIS_URL there still stops start-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench_cold_start import lambda_environment
from infra_pulumi.plan import Plan
from tests.infra.conftest import collect, of_type, one, run_offline

FUNCTION = "aws:lambda/function:Function"
TASK = "aws:ecs/taskDefinition:TaskDefinition"


def _container_environment(plan: Plan, task: str) -> dict[str, str]:
    containers = json.loads(one(plan, TASK, task).props["containerDefinitions"])
    (container,) = [c for c in containers if c["name"] in ("api", "migrate")]
    return {e["name"]: e["value"] for e in container["environment"]}


def _api_environments(plan: Plan) -> dict[str, dict[str, str]]:
    """The API (the function or the ECS task) and the migration task, by name."""
    environments = {"migrate": _container_environment(plan, "compute-migrate")}
    functions = of_type(plan, FUNCTION)
    if functions:
        (function,) = functions
        environments["api"] = dict(function.props["environment"]["variables"])
    else:
        environments["api"] = _container_environment(plan, "compute-api")
    return environments


def test_the_dev_stack_declares_its_in_process_rate_limits(dev: Plan) -> None:
    for name, environment in _api_environments(dev).items():
        assert environment["RATE_LIMITS_SHARED"] == "false", name
        assert environment["APP_ENV"] == "staging", name  # otherwise staging's strict checks


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_must_share_their_rate_limits(plans: dict[str, Plan], stack: str) -> None:
    for name, environment in _api_environments(plans[stack]).items():
        assert "RATE_LIMITS_SHARED" not in environment, name
        assert "REQUIRE_VERIFIED_EMAIL" not in environment, name


def test_a_dev_stack_without_nat_lets_unverified_users_log_in(dev: Plan) -> None:
    """No NAT gateway, no SES endpoint: verification emails cannot leave, so requiring a
    verified address would lock every new user out."""
    assert of_type(dev, "aws:ec2/natGateway:NatGateway") == []
    for name, environment in _api_environments(dev).items():
        assert environment["REQUIRE_VERIFIED_EMAIL"] == "false", name


def test_a_dev_stack_with_nat_requires_verified_email_again() -> None:
    plan = collect(run_offline("dev", "slipway:natGateways=single"))
    for name, environment in _api_environments(plan).items():
        assert "REQUIRE_VERIFIED_EMAIL" not in environment, name
        assert environment["RATE_LIMITS_SHARED"] == "false", name  # still no cache


def test_the_cold_start_benchmark_imports_the_api_as_the_dev_function_runs_it(
    dev: Plan, tmp_path: Path
) -> None:
    """`make bench` measures the Lambda cold start with the dev function's own switches: a
    benchmark environment that differs (say, with a REDIS_URL the function never gets) times
    an import the function never does."""
    (function,) = of_type(dev, FUNCTION)
    deployed = dict(function.props["environment"]["variables"])
    measured = lambda_environment(tmp_path)
    for switch in ("APP_ENV", "RATE_LIMITS_SHARED", "REQUIRE_VERIFIED_EMAIL", "EMAIL_BACKEND"):
        assert measured.get(switch) == deployed.get(switch), switch
    assert not any("redis" in name.lower() for name in deployed)
    assert "REDIS_URL" not in measured
