"""Small helpers shared by the components: tags, IAM documents, naming."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from infra_pulumi.config import StackConfig

# The load balancers' TLS policy: TLS 1.3, with TLS 1.2 for older clients (TLS >= 1.2 is one
# of the invariants in docs/deploying.md#running-stacks).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

# Tag read by the policy pack to know what a security group or bucket is for.
ROLE_TAG = "SlipwayRole"
PURPOSE_TAG = "SlipwayPurpose"


def tags(config: StackConfig, name: str, **extra: str) -> dict[str, str]:
    return {
        "Name": f"{config.name_prefix}-{name}",
        "Project": "slipway",
        "Environment": config.stack,
        **extra,
    }


def document(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def output_document(statements: pulumi.Input[Sequence[Any]]) -> pulumi.Output[str]:
    """An IAM policy document whose statements contain Outputs (ARNs)."""
    return pulumi.Output.from_input(statements).apply(lambda resolved: document(resolved))


def read_secrets_document(
    secret_arns: Sequence[pulumi.Input[str]], kms_key_arn: pulumi.Input[str]
) -> pulumi.Output[str]:
    """Read exactly these secrets, and decrypt them with the key they are encrypted with."""
    return output_document(
        [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": list(secret_arns),
            },
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": kms_key_arn},
        ]
    )


def service_trust(*services: str) -> str:
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": list(services) if len(services) > 1 else services[0]},
                "Action": "sts:AssumeRole",
            }
        ]
    )


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **kwargs)
