"""Task definitions as the mocked program builds them, turned into local processes.

A container's command, environment and secrets are taken as they are, except for the values that
name AWS endpoints and image paths (`swaps`: exact values or substrings replaced by local
counterparts), so what runs locally is what the task would run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra_pulumi.plan import Plan

# Where the venv's console scripts (prefect, uvicorn, alembic) are: the images put theirs on PATH.
VENV_BIN = str(Path(sys.executable).parent)


@dataclass(frozen=True)
class Container:
    task: str  # the task definition's family
    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    secrets: dict[str, str]  # env name -> Secrets Manager reference (`arn` or `arn:key::`)
    health_check: list[str] = field(default_factory=list)
    depends_on: list[dict[str, str]] = field(default_factory=list)
    essential: bool = True
    port: int | None = None

    @staticmethod
    def from_definition(task: str, definition: Mapping[str, Any]) -> Container:
        ports = definition.get("portMappings") or []
        return Container(
            task=task,
            name=str(definition["name"]),
            image=str(definition["image"]),
            command=[str(part) for part in definition.get("command") or []],
            environment={e["name"]: str(e["value"]) for e in definition.get("environment", [])},
            secrets={s["name"]: str(s["valueFrom"]) for s in definition.get("secrets", [])},
            health_check=list((definition.get("healthCheck") or {}).get("command") or []),
            depends_on=list(definition.get("dependsOn") or []),
            essential=bool(definition.get("essential", True)),
            port=int(ports[0]["containerPort"]) if ports else None,
        )


def task_containers(plan: Plan, family_suffix: str) -> list[Container]:
    """The containers of the one task definition whose family ends with `family_suffix`."""
    tasks = [
        resource
        for resource in plan.resources
        if resource.type == "aws:ecs/taskDefinition:TaskDefinition"
        and str(resource.props["family"]).endswith(family_suffix)
    ]
    if len(tasks) != 1:
        raise LookupError(f"expected one task definition *{family_suffix}, found {len(tasks)}")
    family = str(tasks[0].props["family"])
    definitions = json.loads(tasks[0].props["containerDefinitions"])
    return [Container.from_definition(family, definition) for definition in definitions]


def swap(value: str, swaps: Mapping[str, str]) -> str:
    """`value` with every AWS endpoint or image path in `swaps` replaced (longest first)."""
    if value in swaps:
        return swaps[value]
    for old in sorted(swaps, key=len, reverse=True):
        if len(old) > 4 and old in value:  # substrings only for names, never bare ports
            value = value.replace(old, swaps[old])
    return value


def split_reference(reference: str) -> tuple[str, str]:
    """ECS `valueFrom`: `arn` or `arn:jsonKey::` (the key of a JSON secret) -> (arn, key)."""
    if reference.endswith("::"):
        arn, key = reference[:-2].rsplit(":", 1)
        return arn, key
    return reference, ""


def local_environment(
    container: Container,
    resolve_secret: Callable[[str], str],
    swaps: Mapping[str, str],
    home: Path,
) -> dict[str, str]:
    """What the process sees: a clean base, the task's environment with endpoints swapped, and
    its `secrets` resolved as ECS resolves them at task start."""
    base = {
        "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    environment = {name: swap(value, swaps) for name, value in container.environment.items()}
    resolved = {name: resolve_secret(reference) for name, reference in container.secrets.items()}
    return {**base, **environment, **resolved}


def local_command(container: Container, swaps: Mapping[str, str]) -> list[str]:
    return [swap(part, swaps) for part in container.command]


def start(
    command: Sequence[str], environment: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """The container's process, in a process group of its own (stopped as a whole)."""
    with log.open("wb") as output:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
