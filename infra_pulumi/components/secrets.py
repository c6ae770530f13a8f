"""The stack's KMS key and the application secrets in Secrets Manager.

Values come from `pulumi config set --secret` and stay secret Outputs end to end: they are
written into Secrets Manager and containers receive them by ARN, never as plain env values.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

# Secrets Manager name -> slipway:* config key holding its value.
APPLICATION_SECRETS = {
    "jwt-private-keys": "jwtPrivateKeys",
    "stripe-secret-key": "stripeSecretKey",
    "stripe-webhook-secrets": "stripeWebhookSecrets",
    "metrics-token": "metricsToken",
}


class Secrets(pulumi.ComponentResource):
    key: aws.kms.Key
    secrets: dict[str, aws.secretsmanager.Secret]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slipway:secrets:Secrets", name, None, opts)
        self._config = config
        self._name = name
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{config.name_prefix}: RDS, ElastiCache, backups, secrets, logs",
            enable_key_rotation=True,
            deletion_window_in_days=30 if config.is_prod else 7,
            tags=tags(config, "key"),
            opts=child(self),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{config.name_prefix}",
            target_key_id=self.key.key_id,
            opts=child(self),
        )
        self.secrets = {
            secret_name: self.add(secret_name, config.secret(config_key))
            for secret_name, config_key in APPLICATION_SECRETS.items()
        }
        # CloudFront sends it to the API origin as X-Origin-Verify; only requests carrying it
        # may take their client address from CloudFront-Viewer-Address. Generated, never typed.
        self.origin_verify = random.RandomPassword(
            f"{name}-origin-verify", length=48, special=False, opts=child(self)
        ).result
        self.secrets["origin-verify"] = self.add("origin-verify", self.origin_verify)
        self.register_outputs(
            {"kmsKeyArn": self.key.arn, **{k: v.arn for k, v in self.secrets.items()}}
        )

    def add(self, secret_name: str, value: pulumi.Input[str]) -> aws.secretsmanager.Secret:
        """A KMS-encrypted secret holding `value` (kept a secret Output in the state)."""
        secret = aws.secretsmanager.Secret(
            f"{self._name}-{secret_name}",
            name=f"{self._config.name_prefix}/{secret_name}",
            kms_key_id=self.key.arn,
            recovery_window_in_days=30 if self._config.is_prod else 7,
            tags=tags(self._config, secret_name),
            opts=child(self),
        )
        aws.secretsmanager.SecretVersion(
            f"{self._name}-{secret_name}",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(value),
            opts=child(self),
        )
        return secret
