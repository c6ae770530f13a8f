"""Least privilege and supply-chain rules every workflow must follow (CONTRIBUTING.md)."""

from __future__ import annotations

import fnmatch
import re

import pytest
import yaml

from infra_pulumi.github.governance import ALLOWED_THIRD_PARTY_ACTIONS, REQUIRED_CHECKS
from tests.delivery.workflows import (
    CI_WORKFLOW,
    PINNED_USES,
    USES_LINE,
    WORKFLOWS_DIR,
    Workflow,
    all_workflows,
    ci_job_names,
    load_workflow,
    workflow_paths,
)

WORKFLOWS = all_workflows()
IDS = [workflow.path.name for workflow in WORKFLOWS]

# Scopes a job may be granted, and the write scopes that need a reason to exist.
KNOWN_SCOPES = {
    "actions",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "id-token",
    "issues",
    "packages",
    "pages",
    "pull-requests",
    "security-events",
    "statuses",
}
# Untrusted, attacker-controllable event fields that must never be expanded inside a script.
UNTRUSTED_EXPANSION = re.compile(
    r"\$\{\{\s*github\.(event\.(pull_request|issue|comment|review|head_commit|commits)"
    r"|head_ref)[^}]*\}\}"
)


def test_the_three_workflows_exist() -> None:
    assert {path.name for path in workflow_paths()} >= {"ci.yml", "deploy.yml", "security.yml"}


def test_ci_jobs_are_exactly_the_required_status_checks() -> None:
    assert sorted(ci_job_names()) == sorted(REQUIRED_CHECKS) == ["docker", "lint", "test"]
    # Job ids too: deploy and docs refer to them.
    assert sorted(load_workflow(CI_WORKFLOW).jobs) == ["docker", "lint", "test"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_workflow_token_has_no_default_permissions(workflow: Workflow) -> None:
    assert "permissions" in workflow.data, f"{workflow.path.name}: no top-level permissions"
    assert workflow.data["permissions"] in ({}, {"contents": "read"})


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_every_job_declares_minimal_permissions(workflow: Workflow) -> None:
    for job_id, job in workflow.jobs.items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id}: permissions must be an explicit map"
        assert set(permissions) <= KNOWN_SCOPES, f"{job_id}: unknown scope"
        assert permissions.get("contents") in (None, "read"), f"{job_id}: contents: write"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        steps = " ".join(str(step.get("uses", "")) for step in job.get("steps", []))
        if "id-token" in writes:
            # An OIDC token only where AWS is assumed, and only in an environment (the deploy
            # roles trust repository + environment, nothing broader).
            assert "aws-actions/configure-aws-credentials" in steps, job_id
            assert job.get("environment"), f"{job_id}: id-token without an environment"
        if "pull-requests" in writes:
            assert "pulumi/actions" in steps, f"{job_id}: pull-requests: write without a comment"
        assert writes <= {"id-token", "pull-requests"}, f"{job_id}: unexpected write {writes}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(workflow: Workflow) -> None:
    uses_lines = [line for line in workflow.text.splitlines() if USES_LINE.match(line)]
    assert uses_lines, f"{workflow.path.name} uses no actions"
    for line in uses_lines:
        target = USES_LINE.match(line)["target"]  # type: ignore[index]
        if target.startswith("./"):
            continue  # local actions are reviewed with the repository itself
        assert PINNED_USES.match(line), f"{workflow.path.name}: not pinned to a SHA: {line.strip()}"


def test_each_action_is_pinned_to_one_sha_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for workflow in WORKFLOWS:
        for line in workflow.text.splitlines():
            if match := PINNED_USES.match(line):
                pins.setdefault(match["action"], set()).add(match["ref"])
    assert pins
    assert {action: refs for action, refs in pins.items() if len(refs) > 1} == {}


def test_third_party_actions_are_allowed_by_the_repository_actions_policy() -> None:
    # The governance stack allows GitHub's own actions plus an explicit list: a workflow using
    # anything else would fail on GitHub, so catch it here.
    for workflow in WORKFLOWS:
        for line in workflow.text.splitlines():
            if match := PINNED_USES.match(line):
                action = f"{match['action']}@{match['ref']}"
                if action.startswith("actions/"):
                    continue
                assert any(fnmatch.fnmatch(action, p) for p in ALLOWED_THIRD_PARTY_ACTIONS), action


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_checkouts_do_not_persist_the_token(workflow: Workflow) -> None:
    for job_id, job in workflow.jobs.items():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, job_id


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_no_privileged_triggers_or_script_injection(workflow: Workflow) -> None:
    assert "pull_request_target" not in workflow.triggers
    assert "workflow_run" not in workflow.triggers
    for job in workflow.jobs.values():
        for step in job.get("steps", []):
            script = str(step.get("run", ""))
            assert not UNTRUSTED_EXPANSION.search(script), script


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=IDS)
def test_runs_are_grouped_and_jobs_time_out(workflow: Workflow) -> None:
    assert "group" in workflow.data.get("concurrency", {}), workflow.path.name
    for job_id, job in workflow.jobs.items():
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: no timeout"


def test_ci_runs_the_suite_against_real_postgres_and_redis() -> None:
    test_job = load_workflow(CI_WORKFLOW).jobs["test"]
    images = {name: service["image"] for name, service in test_job["services"].items()}
    assert images["postgres"].startswith("postgres:16")
    assert images["redis"].startswith("redis:")
    env = test_job["env"]
    assert env["CI"] == "true"
    assert env["TEST_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["TEST_REDIS_URL"].startswith("redis://")
    commands = " ".join(str(step.get("run", "")) for step in test_job["steps"])
    assert "pytest" in commands


def test_ci_lints_and_builds_the_image() -> None:
    jobs = load_workflow(CI_WORKFLOW).jobs
    lint = " ".join(str(step.get("run", "")) for step in jobs["lint"]["steps"])
    for tool in ("ruff check", "ruff format --check", "mypy", "hadolint", "actionlint"):
        assert tool in lint, tool
    docker_uses = " ".join(str(step.get("uses", "")) for step in jobs["docker"]["steps"])
    assert "docker/build-push-action@" in docker_uses


def test_uv_dependency_cache_only_outside_deployments() -> None:
    # A cache written by a PR must not be restored into a job holding deploy credentials.
    deploy = load_workflow(WORKFLOWS_DIR / "deploy.yml")
    for job in deploy.jobs.values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("astral-sh/setup-uv@"):
                assert step["with"]["enable-cache"] is False
    ci = load_workflow(CI_WORKFLOW)
    setups = [
        step
        for job in ci.jobs.values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("astral-sh/setup-uv@")
    ]
    assert setups
    assert all(step["with"]["enable-cache"] is True for step in setups)


def test_deploy_gates_production_behind_its_environment() -> None:
    deploy = load_workflow(WORKFLOWS_DIR / "deploy.yml")
    jobs = deploy.jobs
    assert jobs["deploy-staging"]["environment"] == "staging"
    assert jobs["deploy-prod"]["environment"] == "production"
    assert "deploy-staging" in jobs["deploy-prod"]["needs"]
    assert {"pull_request", "push"} <= set(deploy.triggers)
    assert "v*" in deploy.triggers["push"]["tags"]
    stacks = {entry["stack"] for entry in jobs["preview"]["strategy"]["matrix"]["include"]}
    assert stacks == {"staging", "prod"}
    # No long-lived AWS keys anywhere: OIDC only.
    assert "aws-access-key-id" not in deploy.text
    assert "AWS_SECRET_ACCESS_KEY" not in deploy.text


def test_pull_request_previews_hold_no_credential() -> None:
    """Previews run for any branch: they plan offline under mocks with the policy pack, with
    no Pulumi token, no cloud role and no secret, so they can neither read a stack's secrets
    nor change its state."""
    preview = load_workflow(WORKFLOWS_DIR / "deploy.yml").jobs["preview"]
    text = yaml.safe_dump(preview)
    assert "secrets." not in text
    assert "environment" not in preview
    assert preview["permissions"] == {"contents": "read"}
    uses = [str(step.get("uses", "")) for step in preview["steps"]]
    assert not [u for u in uses if u.startswith(("pulumi/", "aws-actions/"))]
    runs = "\n".join(str(step.get("run", "")) for step in preview["steps"])
    assert "python -m infra_pulumi.plan --stack" in runs
