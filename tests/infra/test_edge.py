"""CloudFront in front of the API: only it may reach the origin, and it proves itself to it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra_pulumi.plan import Plan, PlannedResource
from tests.infra.conftest import of_type, one

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
FUNCTION = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
ORIGIN_HEADER = "X-Origin-Verify"


def _api_origin(plan: Plan) -> dict[str, Any]:
    origins = one(plan, DISTRIBUTION).props["origins"]
    (origin,) = [o for o in origins if o["originId"] == "api"]
    return dict(origin)


def _origin_secret(plan: Plan) -> tuple[PlannedResource, str]:
    secret = one(plan, SECRET, "secrets-origin-verify")
    (version,) = [v for v in of_type(plan, SECRET_VERSION) if v.name == "secrets-origin-verify"]
    return secret, str(version.props["secretString"])


def test_lambda_function_url_takes_only_cloudfronts_signed_requests(dev: Plan) -> None:
    """authorization NONE let anyone call the function URL and skip CloudFront and its WAF."""
    staging = dev  # the Lambda runtime: dev stacks (staging ran it until it moved to ECS)
    url = one(staging, FUNCTION_URL).props
    assert url["authorizationType"] == "AWS_IAM"
    distribution = one(staging, DISTRIBUTION).props
    origin = _api_origin(staging)
    oacs = {o.props["id"]: o.props for o in of_type(staging, OAC)}
    signing = oacs[str(origin["originAccessControlId"])]
    assert signing["originAccessControlOriginType"] == "lambda"
    assert signing["signingBehavior"] == "always"
    grants = [
        p.props
        for p in of_type(staging, PERMISSION)
        if p.props["principal"] == "cloudfront.amazonaws.com"
    ]
    assert {g["action"] for g in grants} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(g["sourceArn"] == distribution["arn"] for g in grants)
    assert all(g["function"] == one(staging, FUNCTION).props["name"] for g in grants)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cloudfront_adds_the_origin_secret_the_api_is_given(
    plans: dict[str, Plan], stack: str
) -> None:
    """The app trusts CloudFront-Viewer-Address only with this header (agreed interface)."""
    plan = plans[stack]
    secret, value = _origin_secret(plan)
    assert len(value) >= 32
    headers = {h["name"]: h["value"] for h in _api_origin(plan).get("customHeaders") or []}
    assert headers == {ORIGIN_HEADER: value}
    references: dict[str, str] = {}
    for task in of_type(plan, TASK):
        for container in json.loads(task.props["containerDefinitions"]):
            if container["name"] == "api":
                references |= {s["name"]: s["valueFrom"] for s in container["secrets"]}
                assert value not in json.dumps(container["environment"])
    for function in of_type(plan, FUNCTION):
        variables = function.props["environment"]["variables"]
        references |= json.loads(variables["SECRET_ARNS"])
        assert value not in json.dumps(variables)
    assert references["ORIGIN_VERIFY_SECRET"] == secret.props["arn"]
    # On the shared load balancer only requests carrying it reach the API.
    for rule in of_type(plan, "aws:lb/listenerRule:ListenerRule"):
        if rule.name == "compute-api-from-cloudfront":
            (condition,) = rule.props["conditions"]
            assert condition["httpHeader"] == {"httpHeaderName": ORIGIN_HEADER, "values": [value]}
    assert value not in json.dumps(plan.outputs)
