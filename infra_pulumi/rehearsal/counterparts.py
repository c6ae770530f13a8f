"""Local stand-ins for what a stack's tasks reach in AWS: Secrets Manager (moto over HTTP, each
of the stack's secrets created with a test value) and the values tasks would find there."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from api.auth.keys import generate_private_key_pem
from infra_pulumi.components.database import APP_USERNAME
from infra_pulumi.plan import Plan
from infra_pulumi.rehearsal.containers import split_reference
from infra_pulumi.rehearsal.tls_postgres import TlsPostgres, free_port

# moto accepts any signature; these stand in for the task role's credentials.
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal"}


def test_value(name: str, is_prod: bool, database: TlsPostgres, redis_url: str) -> str:
    """A value of the right shape for the secret called `name` (its last path segment)."""
    token = secrets.token_urlsafe(36)
    if name.startswith("rds!"):  # the RDS-managed master secret
        return json.dumps({"username": database.superuser, "password": database.superuser_password})
    values = {
        "database-app": json.dumps(
            {"engine": "postgres", "username": APP_USERNAME, "password": token}
        ),
        "jwt-private-keys": generate_private_key_pem(),
        "stripe-secret-key": ("sk_live_" if is_prod else "sk_test_") + token,
        "stripe-webhook-secrets": "whsec_" + token,
        "redis-url": redis_url,
        "slack-webhook-url": "https://hooks.slack.invalid/services/rehearsal",
    }
    return values.get(name, token)


@dataclass
class SecretsManager:
    """moto's Secrets Manager with the stack's secrets; stack ARN -> moto ARN."""

    endpoint: str
    region: str
    arns: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        return boto3.client(
            "secretsmanager",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def resolve(self, reference: str) -> str:
        """What ECS injects for a `secrets` entry: the secret, or one key of its JSON."""
        arn, key = split_reference(reference)
        value = str(self.client().get_secret_value(SecretId=self.arns[arn])["SecretString"])
        return str(json.loads(value)[key]) if key else value


def stack_secret_arns(plan: Plan) -> list[str]:
    arns = [
        str(resource.props["arn"])
        for resource in plan.resources
        if resource.type == "aws:secretsmanager/secret:Secret"
    ]
    for resource in plan.resources:
        if resource.type == "aws:rds/instance:Instance":
            arns += [str(s["secretArn"]) for s in resource.props.get("masterUserSecrets") or []]
    return arns


@contextmanager
def secrets_manager(
    plan: Plan, region: str, is_prod: bool, database: TlsPostgres, redis_url: str
) -> Iterator[SecretsManager]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        manager = SecretsManager(f"http://127.0.0.1:{port}", region)
        client = manager.client()
        for arn in stack_secret_arns(plan):
            name = arn.rsplit(":", 1)[-1]  # ".../secret:rds!db-x" or "...:slipway-prod/name"
            value = test_value(name.rsplit("/", 1)[-1], is_prod, database, redis_url)
            manager.arns[arn] = client.create_secret(Name=name, SecretString=value)["ARN"]
        yield manager
    finally:
        server.stop()
