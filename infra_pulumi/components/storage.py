"""S3 buckets: static assets (served by CloudFront through OAC), backups, flow reports, access
logs.

Every bucket gets the four public-access blocks, default encryption, a TLS-only policy and
owner-enforced object ownership; backups are versioned, KMS-encrypted and expire by lifecycle.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import PURPOSE_TAG, child, output_document, tags
from infra_pulumi.config import StackConfig

REPORTS_RETENTION_DAYS = 400


def deny_insecure_transport(bucket_name: str) -> dict[str, Any]:
    arn = f"arn:aws:s3:::{bucket_name}"
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


class Storage(pulumi.ComponentResource):
    static_bucket: aws.s3.Bucket
    backup_bucket: aws.s3.Bucket
    reports_bucket: aws.s3.Bucket
    logs_bucket: aws.s3.Bucket

    def __init__(
        self,
        name: str,
        config: StackConfig,
        account_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:storage:Storage", name, None, opts)
        self._name = name
        self._config = config
        self._account_id = pulumi.Output.from_input(account_id)
        self._kms_key_arn = kms_key_arn

        # S3 server access logs only support SSE-S3 on the target bucket.
        self.logs_bucket = self._bucket("access-logs", kms=False)
        self._policy(
            "access-logs",
            self.logs_bucket,
            extra=self._account_id.apply(
                lambda account: [
                    {
                        "Sid": "S3ServerAccessLogs",
                        "Effect": "Allow",
                        "Principal": {"Service": "logging.s3.amazonaws.com"},
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{self._bucket_name('access-logs', account)}/*",
                        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                    }
                ]
            ),
        )
        self._expire("access-logs", self.logs_bucket, days=90 if config.is_prod else 30)

        # CloudFront reads static assets through OAC; SSE-S3 avoids a KMS grant to CloudFront.
        self.static_bucket = self._bucket("static", kms=False, log=True)
        # Re-publishing replaces the manifest; a content-hashed asset stays current forever,
        # since a page a browser or CloudFront still holds may link it.
        self._expire("static", self.static_bucket, days=None, replaced_days=30)
        self.backup_bucket = self._bucket("backups", kms=True, log=True)
        self._policy("backups", self.backup_bucket)
        self._expire("backups", self.backup_bucket, days=config.backup_retention_days)
        # Flow reports (FLOWS_REPORTS_BUCKET): a bucket of their own, because their retention is
        # not the backups' (a weekly report needs last week's for its trend; a year of them
        # shows the long one).
        self.reports_bucket = self._bucket("reports", kms=True, log=True)
        self._policy("reports", self.reports_bucket)
        self._expire("reports", self.reports_bucket, days=REPORTS_RETENTION_DAYS)
        self.register_outputs(
            {
                "staticBucket": self.static_bucket.bucket,
                "backupBucket": self.backup_bucket.bucket,
                "reportsBucket": self.reports_bucket.bucket,
                "logsBucket": self.logs_bucket.bucket,
            }
        )

    def grant_cloudfront_read(self, distribution_arn: pulumi.Input[str]) -> None:
        """The static bucket's policy: TLS only, and reads by this distribution alone (OAC)."""
        statements = pulumi.Output.all(self._account_id, distribution_arn).apply(
            lambda values: [
                {
                    "Sid": "CloudFrontOriginAccessControl",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{self._bucket_name('static', values[0])}/*",
                    "Condition": {"StringEquals": {"AWS:SourceArn": values[1]}},
                }
            ]
        )
        self._policy("static", self.static_bucket, extra=statements)

    def _bucket_name(self, purpose: str, account: str) -> str:
        # Globally unique and known at preview time, so policies can be checked before apply.
        return f"{self._config.name_prefix}-{purpose}-{account}"

    def _bucket(self, purpose: str, *, kms: bool, log: bool = False) -> aws.s3.Bucket:
        name = f"{self._name}-{purpose}"
        bucket = aws.s3.Bucket(
            name,
            bucket=self._account_id.apply(lambda account: self._bucket_name(purpose, account)),
            # Backups must survive `pulumi destroy` of prod by accident.
            force_destroy=not self._config.is_prod,
            tags=tags(self._config, purpose, **{PURPOSE_TAG: purpose}),
            opts=child(self),
        )
        aws.s3.BucketOwnershipControls(
            name,
            bucket=bucket.bucket,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child(self),
        )
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        default: dict[str, Any] = (
            {"sse_algorithm": "aws:kms", "kms_master_key_id": self._kms_key_arn}
            if kms
            else {"sse_algorithm": "AES256"}
        )
        encryption_rule: Any = {
            "apply_server_side_encryption_by_default": default,
            "bucket_key_enabled": kms,
        }
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.bucket,
            rules=[encryption_rule],
            opts=child(self),
        )
        aws.s3.BucketVersioning(
            name,
            bucket=bucket.bucket,
            versioning_configuration={"status": "Enabled"},
            opts=child(self),
        )
        if log:
            aws.s3.BucketLogging(
                name,
                bucket=bucket.bucket,
                target_bucket=self.logs_bucket.bucket,
                target_prefix=f"s3/{purpose}/",
                opts=child(self),
            )
        return bucket

    def _policy(
        self,
        purpose: str,
        bucket: aws.s3.Bucket,
        extra: pulumi.Input[list[dict[str, Any]]] | None = None,
    ) -> aws.s3.BucketPolicy:
        statements = pulumi.Output.all(bucket.bucket, extra or []).apply(
            lambda values: [deny_insecure_transport(values[0]), *values[1]]
        )
        return aws.s3.BucketPolicy(
            f"{self._name}-{purpose}",
            bucket=bucket.bucket,
            policy=output_document(statements),
            opts=child(self),
        )

    def _expire(
        self,
        purpose: str,
        bucket: aws.s3.Bucket,
        days: int | None,
        *,
        replaced_days: int = 7,
    ) -> None:
        """Objects expire `days` after they were written (None: current objects never do);
        versions replaced or deleted expire `replaced_days` after."""
        rule: Any = {  # a plain dict: pulumi-aws's TypedDict is too strict for mypy here
            "id": "retention" if days is not None else "replaced-versions",
            "status": "Enabled",
            "filter": {},
            "noncurrent_version_expiration": {"noncurrent_days": replaced_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 2},
        }
        if days is not None:
            rule["expiration"] = {"days": days}
        aws.s3.BucketLifecycleConfiguration(
            f"{self._name}-{purpose}", bucket=bucket.bucket, rules=[rule], opts=child(self)
        )
