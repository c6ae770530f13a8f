"""GitHub Actions OIDC: a deploy role per stack that one repository environment can assume."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, document, tags
from infra_pulumi.config import StackConfig

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"


def deploy_trust_policy(provider_arn: str, repository: str, environment: str) -> str:
    """Trust pinned to exactly one repository + GitHub environment (no wildcards)."""
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": AUDIENCE,
                        f"{GITHUB_ISSUER}:sub": f"repo:{repository}:environment:{environment}",
                    }
                },
            }
        ]
    )


class CiIdentity(pulumi.ComponentResource):
    deploy_role: aws.iam.Role

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slipway:ci:CiIdentity", name, None, opts)
        provider_arn: pulumi.Input[str]
        if config.github_oidc_provider_arn:
            provider_arn = config.github_oidc_provider_arn
        else:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github",
                url=f"https://{GITHUB_ISSUER}",
                client_id_lists=[AUDIENCE],
                tags=tags(config, "github-oidc"),
                opts=child(self),
            )
            provider_arn = provider.arn
        self.deploy_role = self._role(
            f"{name}-deploy", config, provider_arn, config.github_environment, "deploys"
        )
        # `pulumi up` manages IAM, networking and data stores: nothing narrower can run it.
        # The trust policy, not the permissions, is what keeps this role safe (ADR 0003).
        aws.iam.RolePolicyAttachment(
            f"{name}-deploy-admin",
            role=self.deploy_role.name,
            policy_arn="arn:aws:iam::aws:policy/AdministratorAccess",
            opts=child(self),
        )
        # No preview role: pull-request previews plan offline and need no AWS access at all.
        self.register_outputs({"deployRoleArn": self.deploy_role.arn})

    def _role(
        self,
        name: str,
        config: StackConfig,
        provider_arn: pulumi.Input[str],
        environment: str,
        purpose: str,
    ) -> aws.iam.Role:
        return aws.iam.Role(
            name,
            name=f"{config.name_prefix}-{name.rsplit('-', 1)[-1]}",
            description=f"GitHub Actions {purpose} of {config.github_repository} ({environment})",
            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                lambda arn: deploy_trust_policy(arn, config.github_repository, environment)
            ),
            max_session_duration=3600,
            tags=tags(config, name.rsplit("-", 1)[-1]),
            opts=child(self),
        )
