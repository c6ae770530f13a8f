"""SES in every mocked stack: the DKIM-signed domain identity, the configuration set and its
bounce/complaint events, the API's one SES permission, and the EMAIL_* settings the API gets
(validated by the API's own settings class)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.settings import Settings
from infra_pulumi.plan import Plan, read_stack_config
from tests.infra.conftest import of_type, one

IDENTITY = "aws:sesv2/emailIdentity:EmailIdentity"
CONFIGURATION_SET = "aws:sesv2/configurationSet:ConfigurationSet"
EVENT_DESTINATION = "aws:sesv2/configurationSetEventDestination:ConfigurationSetEventDestination"
RECORD = "aws:route53/record:Record"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA = "aws:lambda/function:Function"


def _api_env(plan: Plan) -> dict[str, str]:
    functions = of_type(plan, LAMBDA)
    if functions:
        env: dict[str, str] = functions[0].props["environment"]["variables"]
        return env
    [api, _] = json.loads(one(plan, TASK, "compute-api").props["containerDefinitions"])
    return {item["name"]: item["value"] for item in api["environment"]}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_domain_is_an_identity_signed_with_dkim_in_the_stacks_zone(
    plans: dict[str, Plan], stack: str
) -> None:
    plan, config = plans[stack], read_stack_config(stack)
    domain = config["slipway:domainName"]
    identity = one(plan, IDENTITY).props
    assert identity["emailIdentity"] == domain
    tokens = identity["dkimSigningAttributes"]["tokens"]
    dkim = sorted(
        (r.props for r in of_type(plan, RECORD) if r.name.startswith("email-dkim-")),
        key=lambda props: str(props["name"]),
    )
    assert len(dkim) == 3
    for token, record in zip(sorted(tokens), dkim, strict=True):
        assert record["zoneId"] == config["slipway:hostedZoneId"]
        assert record["type"] == "CNAME"
        assert record["name"] == f"{token}._domainkey.{domain}"
        assert record["records"] == [f"{token}.dkim.amazonses.com"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_bounces_and_complaints_reach_sns_and_are_suppressed(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    configuration = one(plan, CONFIGURATION_SET).props
    assert configuration["deliveryOptions"]["tlsPolicy"] == "REQUIRE"
    assert set(configuration["suppressionOptions"]["suppressedReasons"]) == {"BOUNCE", "COMPLAINT"}
    assert (
        one(plan, IDENTITY).props["configurationSetName"] == (configuration["configurationSetName"])
    )
    destination = one(plan, EVENT_DESTINATION).props
    assert destination["configurationSetName"] == configuration["configurationSetName"]
    events = destination["eventDestination"]
    assert {"BOUNCE", "COMPLAINT"} <= set(events["matchingEventTypes"])
    topic_arn = events["snsDestination"]["topicArn"]
    assert topic_arn == plan.outputs["emailEventsTopicArn"]
    [statement] = json.loads(one(plan, TOPIC_POLICY, "email-events").props["policy"])["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Resource"] == topic_arn
    assert statement["Condition"]["StringEquals"]["AWS:SourceArn"] == configuration["arn"]


def _ses_statements(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for policy in of_type(plan, ROLE_POLICY):
        for statement in json.loads(policy.props["policy"])["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            if any(str(action).lower().startswith("ses:") for action in actions):
                found.setdefault(policy.name, []).append(statement)
    return found


@pytest.mark.parametrize(
    ("stack", "policy"),
    [
        ("prod", "compute-api-task-email"),
        ("staging", "compute-api-task-email"),
        ("dev", "compute-lambda-email"),
    ],
)
def test_only_the_api_may_send_and_only_from_its_identity(
    plans: dict[str, Plan], stack: str, policy: str
) -> None:
    plan = plans[stack]
    statements = _ses_statements(plan)
    assert list(statements) == [policy]  # no other role of the stack touches SES
    [statement] = statements[policy]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"ses:SendEmail", "ses:SendRawEmail"}
    assert statement["Resource"] == [
        one(plan, IDENTITY).props["arn"],
        one(plan, CONFIGURATION_SET).props["arn"],
    ]
    from_address = statement["Condition"]["StringEquals"]["ses:FromAddress"]
    assert from_address == _api_env(plan)["EMAIL_FROM"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_api_environment_selects_ses_and_passes_the_apis_own_settings(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    env = _api_env(plan)
    domain = read_stack_config(stack)["slipway:domainName"]
    assert env["EMAIL_BACKEND"] == "ses"
    assert env["EMAIL_FROM"] == f"no-reply@{domain}"
    assert (
        env["EMAIL_SES_CONFIGURATION_SET"]
        == one(plan, CONFIGURATION_SET).props["configurationSetName"]
    )
    assert env["EMAIL_LINK_BASE_URL"] == f"https://{domain}"
    email = {name.lower(): value for name, value in env.items() if name.startswith("EMAIL_")}
    settings = Settings.model_validate({"app_env": "test", **email})
    assert settings.email_transport == "ses"
