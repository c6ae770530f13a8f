"""GitHub Actions OIDC: a deploy role per stack that one repository environment can assume,
and, when the stack names a front-end repository, a static-publish role for that repository's
deploy workflow: it may only upload under the static bucket's `static/` prefix and invalidate
CloudFront paths."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, document, output_document, tags
from infra_pulumi.config import StackConfig

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# The key prefix CloudFront serves at /static/ (api.docs_ui.assets.STATIC_PREFIX; the program
# may not import the API, a test keeps the two equal).
STATIC_PREFIX = "static"


def static_publish_statements(bucket: str, distribution_arn: str) -> list[dict[str, object]]:
    """Upload objects under static/ and invalidate this distribution: nothing to read, list,
    delete or change elsewhere."""
    return [
        {
            "Sid": "PutStaticAssets",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/{STATIC_PREFIX}/*",
        },
        {
            "Sid": "InvalidateChangedPaths",
            "Effect": "Allow",
            "Action": "cloudfront:CreateInvalidation",
            "Resource": distribution_arn,
        },
    ]


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
    static_publish_role: aws.iam.Role | None

    def __init__(
        self,
        name: str,
        config: StackConfig,
        static_bucket_name: pulumi.Input[str],
        distribution_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
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
            f"{name}-deploy", config, provider_arn, config.github_repository, "deploys"
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
        self.static_publish_role = None
        if config.github_frontend_repository:
            self.static_publish_role = self._role(
                f"{name}-static",
                config,
                provider_arn,
                config.github_frontend_repository,
                "publishes static assets",
            )
            aws.iam.RolePolicy(
                f"{name}-static-publish",
                role=self.static_publish_role.name,
                policy=output_document(
                    pulumi.Output.all(static_bucket_name, distribution_arn).apply(
                        lambda values: static_publish_statements(values[0], values[1])
                    )
                ),
                opts=child(self),
            )
        outputs: dict[str, pulumi.Output[str]] = {"deployRoleArn": self.deploy_role.arn}
        if self.static_publish_role is not None:
            outputs["staticPublishRoleArn"] = self.static_publish_role.arn
        self.register_outputs(outputs)

    def _role(
        self,
        name: str,
        config: StackConfig,
        provider_arn: pulumi.Input[str],
        repository: str,
        purpose: str,
    ) -> aws.iam.Role:
        # Both roles trust their repository's environment of this stack's name (staging,
        # production): the environments governance creates, deployable from main (and v* tags).
        environment = config.github_environment
        return aws.iam.Role(
            name,
            name=f"{config.name_prefix}-{name.rsplit('-', 1)[-1]}",
            description=f"GitHub Actions {purpose} of {repository} ({environment})",
            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                lambda arn: deploy_trust_policy(arn, repository, environment)
            ),
            max_session_duration=3600,
            tags=tags(config, name.rsplit("-", 1)[-1]),
            opts=child(self),
        )
