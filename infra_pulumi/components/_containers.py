"""Container plumbing shared by the API and the flows: env/secret wiring and the start shim.

RDS manages (and rotates) the master password inside a JSON secret, while the API reads one
`DATABASE_URL`. ECS injects the secret's `username`/`password` keys; this shim URL-encodes them
into `DATABASE_URL` and then execs the real command, so the password never sits in a task
definition, an image or the Pulumi state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

COMPOSE_DATABASE_URL = (
    "import os,sys,urllib.parse as p;"
    "q=lambda v:p.quote(v,safe='');"
    "e=os.environ;"
    "e['DATABASE_URL']='postgresql+psycopg://%s:%s@%s:%s/%s?sslmode=require'%("
    "q(e.pop('DATABASE_USER')),q(e.pop('DATABASE_PASSWORD')),"
    "e['DATABASE_HOST'],e.get('DATABASE_PORT','5432'),e['DATABASE_NAME']);"
    "os.execvp(sys.argv[1],sys.argv[1:])"
)


def with_database_url(command: Sequence[str]) -> list[str]:
    return ["python", "-c", COMPOSE_DATABASE_URL, *command]


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


def container_definitions(definitions: pulumi.Input[Sequence[Any]]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(definitions).apply(lambda resolved: json.dumps(resolved))
