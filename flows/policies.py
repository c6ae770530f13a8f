"""Retries and timeouts per flow, read from prefect.yaml so that file is their one source.

Prefect keeps retries and timeouts on the flow object, not on deployments, and a served or
worker-run flow is re-imported from its entrypoint in a fresh process: so the decorator itself
has to carry them. Each flow module calls `run_policy(name)` in its @flow decorator.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypedDict

import yaml

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


class RunPolicy(TypedDict):
    retries: int
    retry_delay_seconds: int
    timeout_seconds: int


class DeploymentConfigError(ValueError):
    """prefect.yaml lacks a deployment for a flow, or one of its policy keys."""


@cache
def load_deployments(path: Path = PREFECT_YAML) -> tuple[dict[str, Any], ...]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    deployments = document.get("deployments") or []
    if not isinstance(deployments, list):
        raise DeploymentConfigError(f"{path}: `deployments` must be a list")
    return tuple(deployments)


def run_policy(flow_name: str, path: Path = PREFECT_YAML) -> RunPolicy:
    for deployment in load_deployments(path):
        if deployment.get("flow_name") == flow_name:
            try:
                return RunPolicy(
                    retries=int(deployment["retries"]),
                    retry_delay_seconds=int(deployment["retry_delay_seconds"]),
                    timeout_seconds=int(deployment["timeout_seconds"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DeploymentConfigError(
                    f"{path}: deployment of {flow_name} needs integer retries, "
                    "retry_delay_seconds and timeout_seconds"
                ) from exc
    raise DeploymentConfigError(f"{path} has no deployment with flow_name {flow_name!r}")
