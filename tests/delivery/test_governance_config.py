"""Governance configuration errors name the key and never echo a secret."""

from __future__ import annotations

from typing import Any, cast

import pytest

from infra_pulumi.github.config import GovernanceConfigError, load

VALID: dict[str, Any] = {
    "backendRepository": "slipway",
    "productionReviewerTeams": ["maintainers"],
    "awsRegion": "eu-west-1",
    "slipwayStacks": {"staging": "acme/slipway/staging", "prod": "acme/slipway/prod"},
    "smokeTestEmail": "smoke-test@example.com",
}
TOKEN = cast(Any, "token-object")  # load() only passes the secret Output through


def load_with(secret: Any = TOKEN, **changes: Any):
    values = {**VALID, **changes}
    secrets = {"pulumiAccessToken": secret, "smokeTestPassword": TOKEN}
    return load(values.get, secrets.get)


def test_valid_configuration_has_safe_defaults() -> None:
    config = load_with()
    assert config.visibility == "private"
    assert config.required_approvals == 1
    assert config.frontend_repository is None
    assert config.secret_scanning is True
    assert [(t.stack, t.environment, t.qualified_stack) for t in config.targets] == [
        ("staging", "staging", "acme/slipway/staging"),
        ("prod", "production", "acme/slipway/prod"),
    ]


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"productionReviewerTeams": None}, "productionReviewerTeams"),
        ({"backendRepository": "no spaces allowed"}, "backendRepository"),
        ({"requiredApprovals": 0}, "requiredApprovals"),
        ({"visibility": "secret"}, "visibility"),
        ({"awsRegion": "Europe"}, "awsRegion"),
        ({"slipwayStacks": {"staging": "acme/slipway/staging"}}, "slipwayStacks.prod"),
        ({"slipwayStacks": "acme/slipway"}, "slipwayStacks"),
        ({"prodDeployRoleArn": "arn:aws:iam::1:user/someone"}, "prodDeployRoleArn"),
        ({"productionReviewerUserIds": ["octocat"]}, "productionReviewerUserIds"),
        ({"smokeTestEmail": "nobody"}, "smokeTestEmail"),
    ],
)
def test_invalid_values_are_refused_naming_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(GovernanceConfigError, match=f"slipway-github:{key}"):
        load_with(**changes)


def test_missing_pulumi_token_names_the_command_to_set_it() -> None:
    with pytest.raises(GovernanceConfigError, match="config set --secret slipway-github:pulumi"):
        load_with(secret=None)
