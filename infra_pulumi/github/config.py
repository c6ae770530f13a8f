"""Typed configuration of the `slipway-github` governance stack.

Like infra_pulumi/config.py, the loader is a plain function over lookups so tests can feed it
dictionaries; `from_pulumi()` binds it to `pulumi.Config`. Every error names the key and never
echoes a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

NAMESPACE = "slipway-github"

_REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_CHECK_NAME = re.compile(r"^[\w .()/-]{1,100}$")
_VISIBILITIES = ("private", "internal", "public")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class GovernanceConfigError(ValueError):
    """A missing or invalid governance configuration value; the message names the key."""


@dataclass(frozen=True)
class DeployTarget:
    """One slipway stack that this repository deploys, and where its deploy role comes from."""

    stack: str  # slipway stack name: staging | prod
    environment: str  # GitHub environment: staging | production
    qualified_stack: str  # org/slipway/<stack>, for StackReference and `pulumi -s`
    deploy_role_arn: str | None  # explicit override; otherwise the stack's deployRoleArn output


@dataclass(frozen=True)
class GovernanceConfig:
    backend_repository: str
    frontend_repository: str | None
    frontend_required_checks: tuple[str, ...]
    visibility: str
    required_approvals: int
    production_reviewer_teams: tuple[str, ...]
    production_reviewer_user_ids: tuple[int, ...]
    aws_region: str
    targets: tuple[DeployTarget, ...]
    pulumi_access_token: pulumi.Output[str]
    # The account deploy.yml's smoke check signs in with after each deploy (both stacks).
    smoke_test_email: str
    smoke_test_password: pulumi.Output[str]
    secret_scanning: bool


Lookup = Callable[[str], Any]


def _string(key: str, value: Any, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise GovernanceConfigError(f"{NAMESPACE}:{key} must be a non-empty string")
    if pattern is not None and not pattern.fullmatch(value):
        raise GovernanceConfigError(f"{NAMESPACE}:{key} has an invalid format")
    return value


def _string_list(key: str, value: Any, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise GovernanceConfigError(f"{NAMESPACE}:{key} must be a list of strings")
    return tuple(_string(key, item, pattern) for item in value)


def _target(read: Lookup, stack: str, environment: str, stacks: Mapping[str, Any]) -> DeployTarget:
    qualified = _string(f"slipwayStacks.{stack}", stacks.get(stack), _STACK_NAME)
    prefix = "staging" if stack == "staging" else "prod"
    key = f"{prefix}DeployRoleArn"
    raw = read(key)
    return DeployTarget(
        stack=stack,
        environment=environment,
        qualified_stack=qualified,
        deploy_role_arn=None if raw is None else _string(key, raw, _ROLE_ARN),
    )


def load(read: Lookup, read_secret: Callable[[str], pulumi.Output[str] | None]) -> GovernanceConfig:
    """Reads every key; `read` returns plain values (parsed objects for lists and maps)."""
    visibility = read("visibility") or "private"
    if visibility not in _VISIBILITIES:
        raise GovernanceConfigError(f"{NAMESPACE}:visibility must be one of {_VISIBILITIES}")
    approvals = read("requiredApprovals")
    approvals = 1 if approvals is None else approvals
    if not isinstance(approvals, int) or not 1 <= approvals <= 6:
        raise GovernanceConfigError(f"{NAMESPACE}:requiredApprovals must be an integer 1-6")

    teams = _string_list(
        "productionReviewerTeams", read("productionReviewerTeams"), _REPOSITORY_NAME
    )
    users_raw = read("productionReviewerUserIds") or []
    if not isinstance(users_raw, list) or not all(
        isinstance(user, int) and user > 0 for user in users_raw
    ):
        raise GovernanceConfigError(
            f"{NAMESPACE}:productionReviewerUserIds must be a list of GitHub user ids"
        )
    if not teams and not users_raw:
        # Production without reviewers would deploy unapproved: refuse rather than default.
        raise GovernanceConfigError(
            f"{NAMESPACE}:productionReviewerTeams (or productionReviewerUserIds) must name at "
            "least one reviewer for the production environment"
        )

    stacks = read("slipwayStacks")
    if not isinstance(stacks, Mapping):
        raise GovernanceConfigError(
            f"{NAMESPACE}:slipwayStacks must map staging and prod to org/slipway/<stack>"
        )
    token = read_secret("pulumiAccessToken")
    if token is None:
        raise GovernanceConfigError(
            f"{NAMESPACE}:pulumiAccessToken is required "
            f"(pulumi config set --secret {NAMESPACE}:pulumiAccessToken)"
        )
    smoke_password = read_secret("smokeTestPassword")
    if smoke_password is None:
        raise GovernanceConfigError(
            f"{NAMESPACE}:smokeTestPassword is required: the password of the smoke-test account "
            f"(pulumi config set --secret {NAMESPACE}:smokeTestPassword)"
        )
    frontend = read("frontendRepository")
    frontend_checks = read("frontendRequiredChecks") or ["lint", "test", "build"]
    secret_scanning = read("secretScanning")
    return GovernanceConfig(
        backend_repository=_string(
            "backendRepository", read("backendRepository"), _REPOSITORY_NAME
        ),
        frontend_repository=None
        if frontend is None
        else _string("frontendRepository", frontend, _REPOSITORY_NAME),
        frontend_required_checks=_string_list(
            "frontendRequiredChecks", frontend_checks, _CHECK_NAME
        ),
        visibility=visibility,
        required_approvals=approvals,
        production_reviewer_teams=teams,
        production_reviewer_user_ids=tuple(users_raw),
        aws_region=_string("awsRegion", read("awsRegion"), re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")),
        targets=(
            _target(read, "staging", "staging", stacks),
            _target(read, "prod", "production", stacks),
        ),
        pulumi_access_token=token,
        smoke_test_email=_string("smokeTestEmail", read("smokeTestEmail"), _EMAIL),
        smoke_test_password=smoke_password,
        # Secret scanning and push protection; private repositories need GitHub Advanced Security.
        secret_scanning=True if secret_scanning is None else bool(secret_scanning),
    )


def from_pulumi() -> GovernanceConfig:
    config = pulumi.Config(NAMESPACE)

    def read(key: str) -> Any:
        try:
            return config.get_object(key)
        except pulumi.ConfigTypeError:  # a plain string such as a repository name
            return config.get(key)

    return load(read, config.get_secret)
