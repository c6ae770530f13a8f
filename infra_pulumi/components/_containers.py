"""Container plumbing shared by the API and the flows: env/secret wiring and the start command.

Every API container starts through `api/container_bootstrap.py` (passed inline with
`python -c`, so the command does not depend on the image's layout): it resolves Secrets Manager
references where the runtime has no native injection (Lambda) and builds `DATABASE_URL`, then
execs the real command.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pulumi

# In api/: the API also calls its Secrets Manager client at run time (database credentials).
BOOTSTRAP_FILE = Path(__file__).resolve().parents[2] / "api" / "container_bootstrap.py"
# AWS's RDS CA bundle inside the images (Dockerfile.flows ADDs it, pinned by checksum): RDS
# certificates chain to these CAs, which no system trust store carries.
RDS_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"


@cache
def bootstrap_source() -> str:
    """The bootstrap without docstrings or comments: it travels inside task/function configs."""
    tree = ast.parse(BOOTSTRAP_FILE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.pop(0)
            if not body:
                body.append(ast.Pass())
    return ast.unparse(tree)


def with_bootstrap(command: Sequence[str]) -> list[str]:
    return ["python", "-c", bootstrap_source(), *command]


def env_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in sorted(values.items())]


def secret_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    """ECS `secrets`: env name -> Secrets Manager ARN (optionally `arn:jsonKey::`)."""
    return [{"name": key, "valueFrom": value} for key, value in sorted(values.items())]


def database_secret_refs(master_secret_arn: str) -> dict[str, str]:
    return {
        "DATABASE_USER": f"{master_secret_arn}:username::",
        "DATABASE_PASSWORD": f"{master_secret_arn}:password::",
    }


def log_configuration(group: str, region: str, prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": group,
            "awslogs-region": region,
            "awslogs-stream-prefix": prefix,
        },
    }


def run_task_network(
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    *,
    public_ip: bool = False,
) -> pulumi.Output[str]:
    """`aws ecs run-task --network-configuration` JSON for one-off tasks: private, no public IP
    unless the subnets have no NAT route (`public_ip`)."""
    return pulumi.Output.all(list(subnet_ids), security_group_id).apply(
        lambda values: json.dumps(
            {
                "awsvpcConfiguration": {
                    "subnets": values[0],
                    "securityGroups": [values[1]],
                    "assignPublicIp": "ENABLED" if public_ip else "DISABLED",
                }
            }
        )
    )


def container_definitions(definitions: pulumi.Input[Sequence[Any]]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(definitions).apply(lambda resolved: json.dumps(resolved))
