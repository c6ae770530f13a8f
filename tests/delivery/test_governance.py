"""The `slipway-github` governance program under Pulumi mocks (run in a subprocess, see
governance_harness.py): what it would configure on GitHub."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from infra_pulumi.github.governance import FRONTEND_WORKFLOW
from tests.delivery.workflows import ROOT, ci_job_names

TOKEN = "pul-test-token-0123456789"  # the Pulumi access token handed to the deploy jobs
STAGING_ROLE = "arn:aws:iam::111111111111:role/slipway-staging-deploy"
PROD_ROLE = "arn:aws:iam::222222222222:role/slipway-prod-deploy"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how Pulumi marks a secret value on the wire

BASE_CONFIG = {
    "github:owner": "acme",
    "slipway-github:backendRepository": "slipway",
    "slipway-github:frontendRepository": "slipway-web",
    "slipway-github:frontendRequiredChecks": json.dumps(["lint", "unit", "build"]),
    "slipway-github:requiredApprovals": "2",
    "slipway-github:productionReviewerTeams": json.dumps(["maintainers", "sre"]),
    "slipway-github:productionReviewerUserIds": json.dumps([4242]),
    "slipway-github:awsRegion": "eu-west-1",
    "slipway-github:slipwayStacks": json.dumps(
        {"staging": "acme/slipway/staging", "prod": "acme/slipway/prod"}
    ),
    "slipway-github:pulumiAccessToken": TOKEN,
    "slipway-github:smokeTestEmail": "smoke-test@example.com",
    "slipway-github:smokeTestPassword": "smoke-password-0123456789",
}
STAGING_STATIC_ROLE = "arn:aws:iam::111111111111:role/slipway-staging-static"
PROD_STATIC_ROLE = "arn:aws:iam::222222222222:role/slipway-prod-static"
STACK_OUTPUTS = {
    "acme/slipway/staging": {
        "deployRoleArn": STAGING_ROLE,
        "ecrRepositoryUrl": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/slipway-staging",
        "staticPublishRoleArn": STAGING_STATIC_ROLE,
        "staticBucket": "slipway-staging-static-111111111111",
        "cloudfrontDistributionId": "E1STAGING",
    },
    "acme/slipway/prod": {
        "deployRoleArn": PROD_ROLE,
        "ecrRepositoryUrl": "222222222222.dkr.ecr.eu-west-1.amazonaws.com/slipway-prod",
        "staticPublishRoleArn": PROD_STATIC_ROLE,
        "staticBucket": "slipway-prod-static-222222222222",
        "cloudfrontDistributionId": "E2PROD",
    },
}


def run_governance(
    config: dict[str, str], stack_outputs: dict[str, dict[str, str]] = STACK_OUTPUTS
) -> dict[str, Any]:
    scenario = {
        "config": config,
        "secret_keys": ["slipway-github:pulumiAccessToken", "slipway-github:smokeTestPassword"],
        "stack_outputs": stack_outputs,
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.delivery.governance_harness"],
        cwd=ROOT,
        input=json.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


class Registered:
    def __init__(self, report: dict[str, Any]) -> None:
        assert "error" not in report, report["error"]
        self.resources: list[dict[str, Any]] = report["resources"]

    def of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [r["inputs"] for r in self.resources if r["type"].endswith(suffix)]

    def one(self, suffix: str, **match: Any) -> dict[str, Any]:
        found = [
            inputs
            for inputs in self.of_type(suffix)
            if all(inputs.get(key) == value for key, value in match.items())
        ]
        assert len(found) == 1, (suffix, match, found)
        return found[0]

    def variables(self, environment: str, repository: str = "slipway") -> dict[str, Any]:
        return {
            v["variableName"]: v["value"]
            for v in self.of_type(":ActionsEnvironmentVariable")
            if v["environment"] == environment and v["repository"] == repository
        }


@pytest.fixture(scope="module")
def registered() -> Registered:
    return Registered(run_governance(BASE_CONFIG))


def test_main_requires_exactly_the_ci_jobs_as_status_checks(registered: Registered) -> None:
    protection = registered.one(":BranchProtection", repositoryId="node-slipway")
    checks = protection["requiredStatusChecks"][0]
    assert sorted(checks["contexts"]) == sorted(ci_job_names())
    assert checks["strict"] is True


def test_main_is_protected_for_everyone(registered: Registered) -> None:
    for repository in ("slipway", "slipway-web"):
        protection = registered.one(":BranchProtection", repositoryId=f"node-{repository}")
        assert protection["pattern"] == "main"
        assert protection["enforceAdmins"] is True
        assert protection["requiredLinearHistory"] is True
        assert protection["allowsForcePushes"] is False
        assert protection["allowsDeletions"] is False
        assert protection["requireConversationResolution"] is True
        reviews = protection["requiredPullRequestReviews"][0]
        assert reviews["requiredApprovingReviewCount"] == 2
        assert reviews["dismissStaleReviews"] is True
        assert reviews["requireCodeOwnerReviews"] is True
        assert reviews["requireLastPushApproval"] is True


def test_frontend_repository_requires_its_own_checks(registered: Registered) -> None:
    protection = registered.one(":BranchProtection", repositoryId="node-slipway-web")
    assert protection["requiredStatusChecks"][0]["contexts"] == ["lint", "unit", "build"]


def test_repositories_merge_by_squash_only_and_scan_for_secrets(registered: Registered) -> None:
    for name in ("slipway", "slipway-web"):
        repo = registered.one(":Repository", name=name)
        assert repo["visibility"] == "private"
        assert (repo["allowSquashMerge"], repo["allowMergeCommit"], repo["allowRebaseMerge"]) == (
            True,
            False,
            False,
        )
        assert repo["deleteBranchOnMerge"] is True
        assert repo["archiveOnDestroy"] is True
        security = repo["securityAndAnalysis"]
        assert security["secretScanning"]["status"] == "enabled"
        assert security["secretScanningPushProtection"]["status"] == "enabled"


def test_workflows_get_a_read_only_token_and_only_pinned_allowed_actions(
    registered: Registered,
) -> None:
    token = registered.one(":WorkflowRepositoryPermissions", repository="slipway")
    assert token["defaultWorkflowPermissions"] == "read"
    assert token["canApprovePullRequestReviews"] is False
    actions = registered.one(":ActionsRepositoryPermissions", repository="slipway")
    assert actions["allowedActions"] == "selected"
    assert actions["shaPinningRequired"] is True
    assert actions["allowedActionsConfig"]["githubOwnedAllowed"] is True
    assert actions["allowedActionsConfig"]["verifiedAllowed"] is False


def test_environments_and_who_may_deploy_to_them(registered: Registered) -> None:
    environments = {
        env["environment"]: env
        for env in registered.of_type(":RepositoryEnvironment")
        if env["repository"] == "slipway"
    }
    assert set(environments) == {"staging", "production"}
    production = environments["production"]
    reviewers = production["reviewers"][0]
    assert len(reviewers["teams"]) == 2  # maintainers and sre, looked up by slug
    assert reviewers["users"] == [4242]
    assert production["preventSelfReview"] is True
    assert production["canAdminsBypass"] is False
    for name in ("staging", "production"):
        assert environments[name]["deploymentBranchPolicy"] == {
            "protectedBranches": False,
            "customBranchPolicies": True,
        }
        assert "reviewers" not in environments[name] or name == "production"

    policies = {
        (p["environment"], p.get("branchPattern"), p.get("tagPattern"))
        for p in registered.of_type(":RepositoryEnvironmentDeploymentPolicy")
    }
    assert policies == {
        ("staging", "main", None),
        ("production", "main", None),
        ("production", None, "v*"),
    }


def test_each_environment_gets_its_role_region_and_stack(registered: Registered) -> None:
    assert registered.variables("staging") == {
        "AWS_DEPLOY_ROLE_ARN": STAGING_ROLE,
        "AWS_REGION": "eu-west-1",
        "PULUMI_STACK": "acme/slipway/staging",
        "ECR_REPOSITORY_URL": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/slipway-staging",
        "SMOKE_TEST_EMAIL": "smoke-test@example.com",
    }
    assert registered.variables("production")["AWS_DEPLOY_ROLE_ARN"] == PROD_ROLE
    assert registered.variables("production")["PULUMI_STACK"] == "acme/slipway/prod"


def test_every_variable_the_deploy_workflow_reads_is_provided(registered: Registered) -> None:
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"vars\.([A-Z_]+)", text))
    for environment in ("staging", "production"):
        assert used <= set(registered.variables(environment)), environment


def test_pulumi_token_is_an_environment_secret_and_never_plain(registered: Registered) -> None:
    secrets = [
        s
        for s in registered.of_type(":ActionsEnvironmentSecret")
        if s["secretName"] == "PULUMI_ACCESS_TOKEN"
    ]
    assert {s["environment"] for s in secrets} == {"staging", "production"}
    for secret in secrets:
        assert secret["plaintextValue"][SECRET_SIG]  # wrapped as a Pulumi secret
        assert secret["plaintextValue"]["value"] == TOKEN
    plain = [r for r in registered.resources if r["type"].endswith(":ActionsEnvironmentVariable")]
    assert TOKEN not in json.dumps(plain)


def test_explicit_role_arns_override_stack_outputs_and_frontend_is_optional() -> None:
    config = {
        key: value
        for key, value in BASE_CONFIG.items()
        if key != "slipway-github:frontendRepository"
    }
    override = "arn:aws:iam::333333333333:role/override"
    config["slipway-github:stagingDeployRoleArn"] = override
    registered = Registered(run_governance(config))
    assert [r["name"] for r in registered.of_type(":Repository")] == ["slipway"]
    assert registered.variables("staging")["AWS_DEPLOY_ROLE_ARN"] == override


def test_a_stack_without_a_deploy_role_output_fails_naming_it() -> None:
    staging = dict(STACK_OUTPUTS["acme/slipway/staging"])
    del staging["deployRoleArn"]
    report = run_governance(BASE_CONFIG, {**STACK_OUTPUTS, "acme/slipway/staging": staging})
    assert "deployRoleArn" in report.get("error", "")


def test_the_smoke_test_password_is_a_deploy_environment_secret(registered: Registered) -> None:
    secrets = [
        s
        for s in registered.of_type(":ActionsEnvironmentSecret")
        if s["secretName"] == "SMOKE_TEST_PASSWORD"
    ]
    assert {s["environment"] for s in secrets} == {"staging", "production"}
    for secret in secrets:
        assert secret["plaintextValue"][SECRET_SIG]
        assert secret["plaintextValue"]["value"] == BASE_CONFIG["slipway-github:smokeTestPassword"]


def test_no_environment_any_branch_can_use_holds_a_secret(registered: Registered) -> None:
    """A pull request from any branch ran `pulumi preview` in `*-preview` environments holding
    the full-power Pulumi token: `pulumi config --show-secrets -s prod` from a branch printed
    prod's secrets. Secrets now live only where a branch policy admits main (and tags)."""
    environments = {env["environment"]: env for env in registered.of_type(":RepositoryEnvironment")}
    holders = {s["environment"] for s in registered.of_type(":ActionsEnvironmentSecret")}
    assert holders
    for name in holders:
        assert environments[name].get("deploymentBranchPolicy") == {
            "protectedBranches": False,
            "customBranchPolicies": True,
        }, name
    policies = {
        p["environment"]
        for p in registered.of_type(":RepositoryEnvironmentDeploymentPolicy")
        if p.get("branchPattern") == "main"
    }
    assert holders <= policies


def test_frontend_repository_gets_the_deploy_workflow(registered: Registered) -> None:
    (committed,) = registered.of_type(":RepositoryFile")
    assert committed["repository"] == "slipway-web"
    assert committed["file"] == ".github/workflows/deploy.yml"
    assert committed["content"] == FRONTEND_WORKFLOW.read_text(encoding="utf-8")
    assert committed["overwriteOnCreate"] is True


def test_frontend_environments_carry_only_the_static_publishing_identity(
    registered: Registered,
) -> None:
    assert registered.variables("staging", "slipway-web") == {
        "AWS_REGION": "eu-west-1",
        "AWS_STATIC_ROLE_ARN": STAGING_STATIC_ROLE,
        "STATIC_BUCKET": "slipway-staging-static-111111111111",
        "CLOUDFRONT_DISTRIBUTION_ID": "E1STAGING",
    }
    production = registered.variables("production", "slipway-web")
    assert production["AWS_STATIC_ROLE_ARN"] == PROD_STATIC_ROLE
    assert production["CLOUDFRONT_DISTRIBUTION_ID"] == "E2PROD"
    # Neither the Pulumi token nor any other secret reaches the front-end repository.
    secrets = registered.of_type(":ActionsEnvironmentSecret")
    assert [s for s in secrets if s["repository"] == "slipway-web"] == []
    environments = {
        env["environment"]: env
        for env in registered.of_type(":RepositoryEnvironment")
        if env["repository"] == "slipway-web"
    }
    assert set(environments) == {"staging", "production"}
    assert environments["production"]["preventSelfReview"] is True
    assert len(environments["production"]["reviewers"][0]["teams"]) == 2
    assert "reviewers" not in environments["staging"]
    policies = {
        (p["environment"], p.get("branchPattern"), p.get("tagPattern"))
        for p in registered.of_type(":RepositoryEnvironmentDeploymentPolicy")
        if p["repository"] == "slipway-web"
    }
    assert policies == {
        ("staging", "main", None),
        ("production", "main", None),
        ("production", None, "v*"),
    }


def test_every_variable_the_frontend_workflow_reads_is_provided(registered: Registered) -> None:
    used = set(re.findall(r"vars\.([A-Z_]+)", FRONTEND_WORKFLOW.read_text(encoding="utf-8")))
    assert used
    for environment in ("staging", "production"):
        assert used <= set(registered.variables(environment, "slipway-web")), environment


def test_a_stack_without_a_static_publish_role_fails_naming_it() -> None:
    prod = dict(STACK_OUTPUTS["acme/slipway/prod"])
    del prod["staticPublishRoleArn"]
    report = run_governance(BASE_CONFIG, {**STACK_OUTPUTS, "acme/slipway/prod": prod})
    assert "staticPublishRoleArn" in report.get("error", "")
