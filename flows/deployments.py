"""`python -m flows serve`: prefect.yaml's deployments, scheduled and run by this process.

`serve` registers each deployment (schedule, parameters, tags) with the Prefect API named by
PREFECT_API_URL and runs their flow runs as local subprocesses until interrupted; it is what
`make flows` starts next to a local Prefect server.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

from flows.policies import load_deployments

API_WAIT_SECONDS = 120
_PLACEHOLDER = re.compile(r"^\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def resolve_placeholders(parameters: dict[str, Any]) -> dict[str, Any]:
    """`"{{ $NAME }}"` values from the environment, as `prefect deploy` would; unset ones are
    dropped so the flow's own default (or its clear error) applies."""
    resolved: dict[str, Any] = {}
    for key, value in parameters.items():
        match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
        if match is None:
            resolved[key] = value
        elif os.environ.get(match.group(1)):
            resolved[key] = os.environ[match.group(1)]
    return resolved


def wait_for_api(api_url: str, timeout_seconds: float = API_WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            if httpx.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the Prefect API at {api_url} did not answer within {timeout_seconds} s"
            )
        time.sleep(1)


def build_deployments(prefect_yaml: Path) -> list[Any]:
    from prefect.flows import Flow, load_flow_from_entrypoint
    from prefect.schedules import Cron

    deployments = []
    for spec in load_deployments(prefect_yaml):
        flow: Flow[..., Any] = load_flow_from_entrypoint(
            spec["entrypoint"], use_placeholder_flow=False
        )
        deployments.append(
            flow.to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=resolve_placeholders(spec.get("parameters") or {}),
                schedules=[
                    Cron(schedule["cron"], timezone=schedule.get("timezone", "UTC"))
                    for schedule in spec["schedules"]
                ],
            )
        )
    return deployments


def serve_deployments(prefect_yaml: Path) -> None:
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise SystemExit("set PREFECT_API_URL (make flows does) to serve the deployments")
    wait_for_api(api_url)
    serve(*build_deployments(prefect_yaml))
