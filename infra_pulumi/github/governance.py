"""Repository governance as code: settings, branch protection, Actions policy and the deployment
environments of the Slipway repositories (pulumi-github).

What it enforces, and why:
- `main` takes changes only through reviewed pull requests that pass CI: required checks are
  exactly ci.yml's job ids (tests/delivery keeps them in sync), approvals come from code owners,
  a new push dismisses stale approvals and needs an approval by someone else, history stays
  linear, nobody force-pushes or deletes the branch — administrators included.
- Workflows get a read-only token by default and may only use GitHub's own actions plus the
  few third-party ones the workflows pin, and only pinned to a full commit SHA.
- Deployments happen from environments: `staging` (from main) and `production` (from main or a
  v* tag, after a required reviewer other than the triggering person approves). There are no
  preview environments: pull-request previews plan offline and hold no credential, because an
  environment any branch can use would hand its secrets to any branch.
  Each environment carries its AWS role (from the slipway stack's outputs), region, stack name
  and the Pulumi access token (a secret, never a plain value).
- The front-end repository gets its deploy workflow (frontend-deploy.yml, committed before
  its branch protection exists) and the same two environments, carrying the stack's
  static-publish role (it may only upload under the static bucket's static/ prefix and
  invalidate the distribution), the bucket and the distribution id. No secret at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_github as github

from infra_pulumi.github.config import DeployTarget, GovernanceConfig

# ci.yml's job ids: the status checks that must pass before anything merges into main.
REQUIRED_CHECKS: tuple[str, ...] = ("lint", "test", "docker")
PROTECTED_BRANCH = "main"
RELEASE_TAG_PATTERN = "v*"

# Third-party actions the workflows may use (GitHub's own `actions/*` are allowed separately).
ALLOWED_THIRD_PARTY_ACTIONS: tuple[str, ...] = (
    "astral-sh/setup-uv@*",
    "aws-actions/amazon-ecr-login@*",
    "aws-actions/configure-aws-credentials@*",
    "docker/build-push-action@*",
    "docker/setup-buildx-action@*",
    "pulumi/actions@*",
)

# Outputs of the slipway stacks (infra_pulumi/__main__.py) that deployments need.
DEPLOY_ROLE_OUTPUT = "deployRoleArn"
ECR_REPOSITORY_OUTPUT = "ecrRepositoryUrl"
STATIC_PUBLISH_ROLE_OUTPUT = "staticPublishRoleArn"
STATIC_BUCKET_OUTPUT = "staticBucket"
DISTRIBUTION_ID_OUTPUT = "cloudfrontDistributionId"

# The front-end repository's deploy workflow, and where it goes in that repository.
FRONTEND_WORKFLOW = Path(__file__).with_name("frontend-deploy.yml")
FRONTEND_WORKFLOW_PATH = ".github/workflows/deploy.yml"


def _required(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"the slipway stack does not export {what}")
    return value


def _stack_output(ref: pulumi.StackReference, name: str) -> pulumi.Output[str]:
    return ref.get_output(name).apply(lambda value: _required(value, name))


class GithubGovernance(pulumi.ComponentResource):
    """The Slipway repositories on GitHub, configured and protected from one typed config."""

    def __init__(
        self,
        name: str,
        config: GovernanceConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("slipway:github:GithubGovernance", name, None, opts)
        self._config = config

        backend = self._repository(
            f"{name}-backend",
            config.backend_repository,
            "Slipway API, infrastructure, ops flows and delivery pipeline",
            REQUIRED_CHECKS,
        )
        repositories = [backend]
        frontend: github.Repository | None = None
        if config.frontend_repository is not None:
            frontend = self._repository(
                f"{name}-frontend",
                config.frontend_repository,
                "Slipway web front end",
                config.frontend_required_checks,
                files={FRONTEND_WORKFLOW_PATH: FRONTEND_WORKFLOW.read_text(encoding="utf-8")},
            )
            repositories.append(frontend)

        environments = [
            self._deploy_targets(name, backend, frontend, target) for target in config.targets
        ]
        self.repository_names = pulumi.Output.all(*[repo.name for repo in repositories])
        self.environment_names = sorted(environments)
        self.required_checks = list(REQUIRED_CHECKS)
        self.register_outputs(
            {
                "repositoryNames": self.repository_names,
                "environmentNames": self.environment_names,
                "requiredChecks": self.required_checks,
            }
        )

    # --- repositories ---------------------------------------------------------------------

    def _repository(
        self,
        name: str,
        repository: str,
        description: str,
        checks: Sequence[str],
        files: Mapping[str, str] | None = None,
    ) -> github.Repository:
        config = self._config
        security = None
        if config.secret_scanning:
            security = github.RepositorySecurityAndAnalysisArgs(
                secret_scanning=github.RepositorySecurityAndAnalysisSecretScanningArgs(
                    status="enabled"
                ),
                secret_scanning_push_protection=(
                    github.RepositorySecurityAndAnalysisSecretScanningPushProtectionArgs(
                        status="enabled"
                    )
                ),
            )
        repo = github.Repository(
            name,
            name=repository,
            description=description,
            visibility=config.visibility,
            has_issues=True,
            has_wiki=False,
            has_projects=False,
            # Squash merges only: one reviewed commit per PR keeps main linear and revertable.
            allow_merge_commit=False,
            allow_rebase_merge=False,
            allow_squash_merge=True,
            squash_merge_commit_title="PR_TITLE",
            squash_merge_commit_message="PR_BODY",
            allow_auto_merge=True,
            delete_branch_on_merge=True,
            vulnerability_alerts=True,
            security_and_analysis=security,
            # `pulumi destroy` archives instead of deleting code and history.
            archive_on_destroy=True,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        child = pulumi.ResourceOptions(parent=repo)
        # Committed to the default branch before its protection exists (which then admits
        # changes only through reviewed pull requests, administrators included).
        committed = [
            github.RepositoryFile(
                f"{name}-file-{path.rsplit('/', 1)[-1]}",
                repository=repo.name,
                file=path,
                content=content,
                commit_message=f"Add {path} (Slipway governance)",
                overwrite_on_create=True,
                opts=child,
            )
            for path, content in sorted((files or {}).items())
        ]
        github.BranchProtection(
            f"{name}-{PROTECTED_BRANCH}",
            repository_id=repo.node_id,
            pattern=PROTECTED_BRANCH,
            enforce_admins=True,
            allows_force_pushes=False,
            allows_deletions=False,
            required_linear_history=True,
            require_conversation_resolution=True,
            required_status_checks=[
                github.BranchProtectionRequiredStatusCheckArgs(
                    strict=True,  # the branch must be up to date with main when checks pass
                    contexts=list(checks),
                )
            ],
            required_pull_request_reviews=[
                github.BranchProtectionRequiredPullRequestReviewArgs(
                    required_approving_review_count=config.required_approvals,
                    dismiss_stale_reviews=True,
                    require_code_owner_reviews=True,
                    require_last_push_approval=True,
                )
            ],
            opts=pulumi.ResourceOptions(parent=repo, depends_on=committed),
        )
        github.WorkflowRepositoryPermissions(
            f"{name}-workflow-token",
            repository=repo.name,
            default_workflow_permissions="read",
            can_approve_pull_request_reviews=False,
            opts=child,
        )
        github.ActionsRepositoryPermissions(
            f"{name}-actions-policy",
            repository=repo.name,
            enabled=True,
            allowed_actions="selected",
            allowed_actions_config=github.ActionsRepositoryPermissionsAllowedActionsConfigArgs(
                github_owned_allowed=True,
                verified_allowed=False,
                patterns_alloweds=list(ALLOWED_THIRD_PARTY_ACTIONS),
            ),
            sha_pinning_required=True,
            opts=child,
        )
        return repo

    # --- environments ---------------------------------------------------------------------

    def _deploy_targets(
        self,
        name: str,
        repo: github.Repository,
        frontend: github.Repository | None,
        target: DeployTarget,
    ) -> str:
        """The deployment environment of one slipway stack, in each repository."""
        config = self._config
        stack = pulumi.StackReference(
            f"{name}-{target.stack}-stack",
            stack_name=target.qualified_stack,
            opts=pulumi.ResourceOptions(parent=self),
        )
        deploy_role: pulumi.Input[str] = target.deploy_role_arn or _stack_output(
            stack, DEPLOY_ROLE_OUTPUT
        )
        common: dict[str, pulumi.Input[str]] = {
            "AWS_REGION": config.aws_region,
            "PULUMI_STACK": target.qualified_stack,
        }
        production = target.environment == "production"
        self._environment(
            f"{name}-{target.environment}",
            repo,
            target.environment,
            branch_patterns=(PROTECTED_BRANCH,),
            tag_patterns=(RELEASE_TAG_PATTERN,) if production else (),
            reviewers=production,
            variables={
                **common,
                "AWS_DEPLOY_ROLE_ARN": deploy_role,
                "ECR_REPOSITORY_URL": _stack_output(stack, ECR_REPOSITORY_OUTPUT),
                "SMOKE_TEST_EMAIL": config.smoke_test_email,
            },
            secrets={
                "PULUMI_ACCESS_TOKEN": config.pulumi_access_token,
                "SMOKE_TEST_PASSWORD": config.smoke_test_password,
            },
        )
        if frontend is not None:
            # What frontend-deploy.yml reads; its role can publish static assets, nothing else.
            self._environment(
                f"{name}-frontend-{target.environment}",
                frontend,
                target.environment,
                branch_patterns=(PROTECTED_BRANCH,),
                tag_patterns=(RELEASE_TAG_PATTERN,) if production else (),
                reviewers=production,
                variables={
                    "AWS_REGION": config.aws_region,
                    "AWS_STATIC_ROLE_ARN": _stack_output(stack, STATIC_PUBLISH_ROLE_OUTPUT),
                    "STATIC_BUCKET": _stack_output(stack, STATIC_BUCKET_OUTPUT),
                    "CLOUDFRONT_DISTRIBUTION_ID": _stack_output(stack, DISTRIBUTION_ID_OUTPUT),
                },
                secrets={},
            )
        return target.environment

    def _reviewers(self) -> list[github.RepositoryEnvironmentReviewerArgs]:
        config = self._config
        teams: list[pulumi.Input[int]] = [
            github.get_team_output(slug=slug).id.apply(int)
            for slug in config.production_reviewer_teams
        ]
        return [
            github.RepositoryEnvironmentReviewerArgs(
                teams=teams, users=list(config.production_reviewer_user_ids)
            )
        ]

    def _environment(
        self,
        name: str,
        repo: github.Repository,
        environment: str,
        *,
        branch_patterns: Sequence[str],
        tag_patterns: Sequence[str],
        reviewers: bool,
        variables: Mapping[str, pulumi.Input[str]],
        secrets: Mapping[str, pulumi.Output[str]],
    ) -> github.RepositoryEnvironment:
        env = github.RepositoryEnvironment(
            name,
            repository=repo.name,
            environment=environment,
            # Only the listed branches/tags may deploy here (and so read its secrets).
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False, custom_branch_policies=True
            ),
            reviewers=self._reviewers() if reviewers else None,
            prevent_self_review=True if reviewers else None,
            can_admins_bypass=False,
            opts=pulumi.ResourceOptions(parent=repo),
        )
        child = pulumi.ResourceOptions(parent=env)
        for pattern in branch_patterns:
            github.RepositoryEnvironmentDeploymentPolicy(
                f"{name}-branch-{pattern}",
                repository=repo.name,
                environment=env.environment,
                branch_pattern=pattern,
                opts=child,
            )
        for pattern in tag_patterns:
            github.RepositoryEnvironmentDeploymentPolicy(
                f"{name}-tag-{pattern.replace('*', 'x')}",
                repository=repo.name,
                environment=env.environment,
                tag_pattern=pattern,
                opts=child,
            )
        for variable, value in sorted(variables.items()):
            github.ActionsEnvironmentVariable(
                f"{name}-{variable.lower().replace('_', '-')}",
                repository=repo.name,
                environment=env.environment,
                variable_name=variable,
                value=value,
                opts=child,
            )
        for secret, value in sorted(secrets.items()):
            github.ActionsEnvironmentSecret(
                f"{name}-{secret.lower().replace('_', '-')}",
                repository=repo.name,
                environment=env.environment,
                secret_name=secret,
                plaintext_value=value,  # a secret Output from config
                opts=child,
            )
        return env
