"""prefect.yaml's deployments, two ways, both against the Prefect API named by PREFECT_API_URL.

`python -m flows serve` registers each deployment (schedule, parameters, tags) and runs their
flow runs as local subprocesses until interrupted: what `make flows` starts next to a local
Prefect server.

`python -m flows deploy` registers (or updates) them for the work pool's workers, creating the
pool when missing: what the deploy pipeline runs in the flows image after `pulumi up`. The API
upserts a deployment by flow and name, so the ids stay and the schedules are replaced, never
added to: running it again changes nothing but what changed in prefect.yaml.
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


class RegistrationError(RuntimeError):
    """A deployment could not be registered; the message says which and why."""


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


def _required(value: Any) -> Any:
    """`"{{ $NAME }}"` anywhere in pull steps or job variables; these have no default."""
    if isinstance(value, dict):
        return {key: _required(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_required(item) for item in value]
    match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    if not os.environ.get(match.group(1)):
        raise RegistrationError(f"prefect.yaml needs ${match.group(1)}, which is not set")
    return os.environ[match.group(1)]


def _ensure_work_pool(client: Any, name: str, pool_type: str) -> str:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=pool_type,
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
        return f"work pool {name}: created ({pool_type})"
    if pool.type != pool_type:
        raise RegistrationError(f"work pool {name} is of type {pool.type}, not {pool_type}")
    return f"work pool {name}: exists ({pool_type})"


def _register(client: Any, spec: dict[str, Any], pull_steps: list[Any], version: str | None) -> str:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound
    from prefect.flows import Flow, load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    flow: Flow[..., Any] = load_flow_from_entrypoint(spec["entrypoint"], use_placeholder_flow=False)
    full_name = f"{flow.name}/{spec['name']}"
    try:
        client.read_deployment_by_name(full_name)
        action = "updated"
    except ObjectNotFound:
        action = "created"
    pool = spec["work_pool"]
    schedules = [
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone", "UTC"))
        for schedule in spec["schedules"]
    ]
    deployment_id = client.create_deployment(
        flow_id=client.create_flow_from_name(flow.name),
        name=spec["name"],
        version=version,
        description=spec.get("description"),
        tags=spec.get("tags"),
        entrypoint=spec["entrypoint"],
        parameters=resolve_placeholders(spec.get("parameters") or {}),
        parameter_openapi_schema=parameter_schema(flow).model_dump(exclude_unset=True),
        enforce_parameter_schema=True,
        schedules=[DeploymentScheduleCreate(schedule=schedule) for schedule in schedules],
        work_pool_name=pool["name"],
        work_queue_name=pool.get("work_queue_name"),
        job_variables=_required(pool.get("job_variables") or {}),
        pull_steps=pull_steps,
    )
    crons = ", ".join(f"{s.cron} {s.timezone}" for s in schedules)
    return (
        f"{full_name}: {action} id={deployment_id} schedule={crons!r} pool={pool['name']} "
        f"version={version or '-'}"
    )


def register_deployments(
    prefect_yaml: Path, version: str | None, wait_seconds: float = API_WAIT_SECONDS
) -> list[str]:
    """Register every deployment of `prefect_yaml`; returns one line per pool and deployment."""
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise RegistrationError("set PREFECT_API_URL to the Prefect API to register with")
    wait_for_api(api_url, wait_seconds)
    document = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    pull_steps = _required(document.get("pull") or [])
    specs = load_deployments(prefect_yaml)
    lines = []
    with get_client(sync_client=True) as client:
        for pool in {spec["work_pool"]["name"] for spec in specs}:
            lines.append(_ensure_work_pool(client, pool, "process"))
        for spec in specs:
            lines.append(_register(client, spec, pull_steps, version))
    return lines
