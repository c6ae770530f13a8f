"""The static assets' publishing identities: the stacks export the bucket and distribution that
`make publish-static` needs, and the front-end repository's role may upload under static/ and
invalidate the distribution, nothing else."""

from __future__ import annotations

import json

import pytest

from api.docs_ui.assets import STATIC_PREFIX
from infra_pulumi.components.ci_identity import GITHUB_ISSUER
from infra_pulumi.components.ci_identity import STATIC_PREFIX as ROLE_STATIC_PREFIX
from infra_pulumi.plan import Plan, read_stack_config
from tests.infra.conftest import of_type, one

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
BUCKET = "aws:s3/bucket:Bucket"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_exports_its_static_bucket_and_distribution(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    assert plan.outputs["staticBucket"] == one(plan, BUCKET, "storage-static").props["bucket"]
    assert plan.outputs["cloudfrontDistributionId"] == one(plan, DISTRIBUTION).props["id"]


@pytest.mark.parametrize(("stack", "environment"), [("staging", "staging"), ("prod", "production")])
def test_front_end_role_trusts_only_its_repository_environment(
    plans: dict[str, Plan], stack: str, environment: str
) -> None:
    plan = plans[stack]
    repository = read_stack_config(stack)["slipway:githubFrontendRepository"]
    assert repository == "slipway-dev/slipway-web"
    role = one(plan, ROLE, "ci-static").props
    (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f"oidc-provider/{GITHUB_ISSUER}")
    assert statement["Condition"] == {
        "StringEquals": {
            f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
            f"{GITHUB_ISSUER}:sub": f"repo:{repository}:environment:{environment}",
        }
    }
    assert plan.outputs["staticPublishRoleArn"] == role["arn"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_front_end_role_may_only_put_static_objects_and_invalidate(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    bucket = one(plan, BUCKET, "storage-static").props["bucket"]
    distribution = one(plan, DISTRIBUTION).props["arn"]
    role_name = one(plan, ROLE, "ci-static").props["name"]
    policies = [p.props for p in of_type(plan, ROLE_POLICY) if p.props["role"] == role_name]
    (policy,) = policies
    assert json.loads(policy["policy"])["Statement"] == [
        {
            "Sid": "PutStaticAssets",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/static/*",
        },
        {
            "Sid": "InvalidateChangedPaths",
            "Effect": "Allow",
            "Action": "cloudfront:CreateInvalidation",
            "Resource": distribution,
        },
    ]
    assert [a for a in of_type(plan, ATTACHMENT) if a.props["role"] == role_name] == []


def test_the_role_prefix_is_the_one_the_app_publishes_to() -> None:
    assert ROLE_STATIC_PREFIX == STATIC_PREFIX == "static"


def test_dev_has_no_publishing_role(dev: Plan) -> None:
    assert "staticPublishRoleArn" not in dev.outputs
    assert [r for r in of_type(dev, ROLE) if r.name == "ci-static"] == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_static_bucket_sheds_replaced_versions_but_keeps_every_published_asset(
    plans: dict[str, Plan], stack: str
) -> None:
    """Re-publishing replaces the manifest (and the bucket is versioned): replaced versions
    expire. A hashed asset stays as long as it is current: an old page may still link it."""
    lifecycle = one(
        plans[stack],
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "storage-static",
    ).props
    assert lifecycle["bucket"] == plans[stack].outputs["staticBucket"]
    (rule,) = lifecycle["rules"]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] <= 30
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] <= 7
    assert "expiration" not in rule
