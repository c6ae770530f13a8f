"""`make infra-rehearse STACK=<stack>`: every task of the stack, run locally for real.

Builds the stack under mocks, then runs each ECS container definition (command, environment,
secrets) and the Lambda function's image config as local processes against local
counterparts: PostgreSQL with TLS from a throwaway CA (the RDS endpoint and CA bundle swapped
for it), Redis, moto's Secrets Manager holding every secret of the stack with a test value, and
the stack's own Prefect server task for the worker and the flows registration. What a runtime
provides (AWS_REGION, credentials) is added; nothing else. Each task must pass its health
check in time:

- the migration task must exit 0 (first), and so must the flows registration (once the Prefect
  server is up, given its address as deploy.yml does);
- an ECS service behind a load balancer must answer its target group's health check path
  within the service's grace period plus the target group's unhealthy threshold x interval
  (when ECS would replace it); the API must also be ready (`/readyz`);
- the Prefect worker must register with the Prefect server (its heartbeat in the work pool);
- the Lambda function, started through its entry point under a local Runtime API, must answer
  `/healthz` and `/readyz` events with 200.

One line per task; exit status 1 when any is unhealthy. Containers that cannot run here (the
ADOT collector) say so, and their configuration is checked instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from infra_pulumi.components._containers import RDS_CA_BUNDLE
from infra_pulumi.components.database import DATABASE_NAME
from infra_pulumi.components.flows_registration import REGISTRATION_CONTAINER
from infra_pulumi.plan import REPO_ROOT, Plan, PlannedResource, read_stack_config, run
from infra_pulumi.rehearsal import adot
from infra_pulumi.rehearsal.containers import (
    Container,
    local_command,
    local_environment,
    start,
)
from infra_pulumi.rehearsal.counterparts import TEST_CREDENTIALS, SecretsManager, secrets_manager
from infra_pulumi.rehearsal.lambda_runtime import runtime_api
from infra_pulumi.rehearsal.tls_postgres import TlsPostgres, free_port, tls_postgres

ALB_UNHEALTHY_THRESHOLD = 3  # the target group default
ALB_INTERVAL_SECONDS = 30
WORKER_REGISTRATION_SECONDS = 60
ONE_OFF_TIMEOUT_SECONDS = 120
ADOT_IMAGE_PREFIX = "public.ecr.aws/aws-observability/aws-otel-collector"


@dataclass(frozen=True)
class Outcome:
    task: str
    healthy: bool
    detail: str

    def line(self) -> str:
        return f"{self.task}: {self.detail}"


def _by_arn(plan: Plan, type_: str, arn: str) -> PlannedResource | None:
    return next((r for r in plan.resources if r.type == type_ and r.props.get("arn") == arn), None)


def _containers(task: PlannedResource) -> list[Container]:
    family = str(task.props["family"])
    return [
        Container.from_definition(family, definition)
        for definition in json.loads(task.props["containerDefinitions"])
    ]


class Rehearsal:
    def __init__(
        self, plan: Plan, database: TlsPostgres, manager: SecretsManager, work: Path, region: str
    ) -> None:
        self.plan = plan
        self.database = database
        self.manager = manager
        self.work = work
        self.region = region
        instance = next(r for r in plan.resources if r.type == "aws:rds/instance:Instance")
        self.swaps: dict[str, str] = {
            str(instance.props["address"]): database.host,
            "5432": str(database.port),
            RDS_CA_BUNDLE: str(database.ca_file),
            "0.0.0.0": "127.0.0.1",  # noqa: S104 - the tasks' listen address, made local
            "/app": str(REPO_ROOT),
            **manager.arns,
        }
        # What ECS and Lambda themselves provide to every task.
        self.runtime_env = {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            **TEST_CREDENTIALS,
            "SECRETS_MANAGER_ENDPOINT": manager.endpoint,
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.prefect_api: str | None = None
        self.prefect_ready = threading.Event()

    # --- plumbing -------------------------------------------------------------------------

    def _environment(
        self, container: Container, swaps: Mapping[str, str], overrides: Mapping[str, str]
    ) -> dict[str, str]:
        home = self.work / f"home-{container.task}-{container.name}"
        home.mkdir(exist_ok=True)
        environment = local_environment(container, self.manager.resolve, swaps, home)
        # Image ENV (Dockerfile.flows) keeps Prefect's state inside the image.
        environment.setdefault("PREFECT_HOME", str(home / "prefect"))
        return {**environment, **self.runtime_env, **overrides}

    def _start(
        self,
        container: Container,
        swaps: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log = self.work / f"{container.task}-{container.name}.log"
        environment = self._environment(container, swaps, overrides or {})
        process = start(local_command(container, swaps), environment, REPO_ROOT, log)
        self.processes.append(process)
        return process

    def _tail(self, container: Container) -> str:
        log = self.work / f"{container.task}-{container.name}.log"
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1][:300] if lines else "no output"

    def _run_once(
        self,
        container: Container,
        swaps: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
    ) -> tuple[bool, str]:
        started = time.monotonic()
        process = self._start(container, swaps, overrides)
        try:
            code = process.wait(timeout=ONE_OFF_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            return False, f"still running after {ONE_OFF_TIMEOUT_SECONDS} s"
        seconds = time.monotonic() - started
        if code != 0:
            return False, f"exited {code} after {seconds:.0f} s: {self._tail(container)}"
        return True, f"exited 0 in {seconds:.0f} s"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    # --- tasks ----------------------------------------------------------------------------

    def one_off(self, task: PlannedResource) -> list[Outcome]:
        outcomes = []
        for container in _containers(task):
            overrides = {}
            if container.name == REGISTRATION_CONTAINER:
                # deploy.yml runs it once the server is up, passing the server's address as
                # a container override (register-flows.sh).
                if not self.prefect_ready.wait(timeout=ONE_OFF_TIMEOUT_SECONDS) or not (
                    self.prefect_api
                ):
                    outcomes.append(Outcome(container.task, False, "no Prefect server to use"))
                    continue
                overrides["PREFECT_API_URL"] = self.prefect_api
            healthy, detail = self._run_once(container, self.swaps, overrides)
            outcomes.append(Outcome(container.task, healthy, detail))
        return outcomes

    def service(self, service: PlannedResource) -> list[Outcome]:
        task = _by_arn(
            self.plan, "aws:ecs/taskDefinition:TaskDefinition", service.props["taskDefinition"]
        )
        if task is None:
            return [Outcome(str(service.props["name"]), False, "task definition not found")]
        outcomes: list[Outcome] = []
        swaps = dict(self.swaps)
        containers = _containers(task)
        # Containers others wait for (dependsOn SUCCESS) run to completion when needed.
        prerequisites = {d["containerName"] for c in containers for d in c.depends_on}
        for container in containers:
            if container.image.startswith(ADOT_IMAGE_PREFIX):
                outcomes.append(self._adot(container, containers))
                continue
            if container.name in prerequisites:
                continue
            for dependency in container.depends_on:
                needed = next(c for c in containers if c.name == dependency["containerName"])
                healthy, detail = self._run_once(needed, swaps)
                outcomes.append(Outcome(f"{needed.task}/{needed.name}", healthy, detail))
                if not healthy:
                    return outcomes
            outcomes.append(self._long_running(service, container, swaps))
        return outcomes

    def _long_running(
        self, service: PlannedResource, container: Container, swaps: dict[str, str]
    ) -> Outcome:
        name = container.task
        if self.prefect_api is None and "PREFECT_API_URL" in container.environment:
            self.prefect_ready.wait(timeout=ONE_OFF_TIMEOUT_SECONDS)
        if self.prefect_api is not None:
            url = container.environment.get("PREFECT_API_URL", "")
            swaps[url] = self.prefect_api
        target = self._target(service, container)
        is_worker = "worker" in container.command and self.prefect_api is not None
        if target is None and not is_worker:
            return Outcome(name, False, "no health check this rehearsal knows how to run")
        if container.port is not None:
            swaps[str(container.port)] = str(free_port())
        started = time.monotonic()
        process = self._start(container, swaps)
        if target is not None:
            path, deadline = target
            base = f"http://127.0.0.1:{swaps[str(container.port)]}"
            paths = [path, "/readyz"] if path == "/healthz" else [path]
            ok = _wait(lambda: all(_status(base + p) == 200 for p in paths), process, deadline)
            if "prefect" in container.name and "server" in container.name:
                if ok:
                    self.prefect_api = f"{base}/api"
                self.prefect_ready.set()  # whoever waits learns the outcome
            what = " and ".join(paths)
        else:
            deadline = WORKER_REGISTRATION_SECONDS
            pool = container.command[container.command.index("--pool") + 1]
            ok = _wait(lambda: _worker_registered(self.prefect_api or "", pool), process, deadline)
            what = f"registration in work pool {pool}"
        seconds = time.monotonic() - started
        if ok:
            return Outcome(name, True, f"healthy in {seconds:.0f} s ({what})")
        state = "crashed" if process.poll() is not None else f"no answer in {deadline} s"
        return Outcome(name, False, f"unhealthy: {state} ({what}): {self._tail(container)}")

    def _target(self, service: PlannedResource, container: Container) -> tuple[str, int] | None:
        """(health check path, seconds until ECS would replace the task) for a service
        container behind a target group."""
        for balancer in service.props.get("loadBalancers") or []:
            if balancer.get("containerName") != container.name:
                continue
            group = _by_arn(self.plan, "aws:lb/targetGroup:TargetGroup", balancer["targetGroupArn"])
            check = (group.props.get("healthCheck") or {}) if group else {}
            interval = int(check.get("interval") or ALB_INTERVAL_SECONDS)
            threshold = int(check.get("unhealthyThreshold") or ALB_UNHEALTHY_THRESHOLD)
            grace = int(service.props.get("healthCheckGracePeriodSeconds") or 0)
            return str(check.get("path") or "/"), grace + threshold * interval
        return None

    def _adot(self, collector: Container, containers: Sequence[Container]) -> Outcome:
        api = next(c for c in containers if c.port is not None)
        config = collector.environment.get("AOT_CONFIG_CONTENT", "")
        problems = adot.validate(config, api.port or 0, collector.secrets.keys())
        name = f"{collector.task}/{collector.name}"
        note = "not run here (the collector binary is not installable offline)"
        if problems:
            return Outcome(name, False, f"{note}; config invalid: {'; '.join(problems)}")
        return Outcome(name, True, f"{note}; config checked structurally: ok")

    def function(self, function: PlannedResource) -> list[Outcome]:
        name = str(function.props["name"])
        image = function.props.get("imageConfig") or {}
        command = [*image.get("entryPoints", []), *image.get("commands", [])]
        container = Container(
            task=name,
            name="function",
            image=str(function.props.get("imageUri")),
            command=[str(part) for part in command],
            environment={
                key: str(value)
                for key, value in (
                    (function.props.get("environment") or {}).get("variables") or {}
                ).items()
            },
            secrets={},
        )
        timeout = int(function.props.get("timeout") or 30)
        started = time.monotonic()
        with runtime_api() as (api, address):
            self.runtime_env["AWS_LAMBDA_RUNTIME_API"] = address
            self.runtime_env["AWS_LAMBDA_FUNCTION_NAME"] = name
            try:
                process = self._start(container, self.swaps)
                for path in ("/healthz", "/readyz"):
                    try:
                        outcome, payload = api.invoke(_function_url_event(path), timeout=timeout)
                    except Exception:
                        state = (
                            "crashed" if process.poll() is not None else f"no answer in {timeout} s"
                        )
                        return [
                            Outcome(
                                name, False, f"unhealthy: {state} ({path}): {self._tail(container)}"
                            )
                        ]
                    if outcome != "response" or payload.get("statusCode") != 200:
                        return [Outcome(name, False, f"unhealthy: {path} answered {payload}")]
            finally:
                del self.runtime_env["AWS_LAMBDA_RUNTIME_API"]
                del self.runtime_env["AWS_LAMBDA_FUNCTION_NAME"]
        seconds = time.monotonic() - started
        return [Outcome(name, True, f"healthy in {seconds:.0f} s (/healthz and /readyz events)")]


def _function_url_event(path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "rehearsal.lambda-url.local"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": path,
                "sourceIp": "127.0.0.1",
                "protocol": "HTTP/1.1",
                "userAgent": "rehearsal",
            },
            "domainName": "rehearsal.lambda-url.local",
            "accountId": "1",
            "apiId": "rehearsal",
            "requestId": "rehearsal",
            "stage": "$default",
            "time": "",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return 0


def _worker_registered(api_url: str, pool: str) -> bool:
    try:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=3)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and bool(response.json())


def _wait(check: Callable[[], bool], process: subprocess.Popen[bytes], seconds: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if check():
            return True
        time.sleep(0.5)
    return False


def _images(resource: PlannedResource, plan: Plan) -> set[str]:
    if resource.type == "aws:lambda/function:Function":
        return {str(resource.props.get("imageUri"))}
    arn = resource.props.get("taskDefinition", resource.props.get("arn"))
    task = _by_arn(plan, "aws:ecs/taskDefinition:TaskDefinition", str(arn))
    return {c.image for c in _containers(task)} if task else set()


def rehearse(plan: Plan, database: TlsPostgres, region: str, redis_url: str) -> list[Outcome]:
    services = [r for r in plan.resources if r.type == "aws:ecs/service:Service"]
    functions = [r for r in plan.resources if r.type == "aws:lambda/function:Function"]
    one_offs = [
        r
        for r in plan.resources
        if r.type == "aws:ecs/taskDefinition:TaskDefinition"
        and not any(s.props["taskDefinition"] == r.props.get("arn") for s in services)
    ]
    # deploy.yml migrates before the rollout and registers the flows after it.
    registrations = [
        task
        for task in one_offs
        if any(c.name == REGISTRATION_CONTAINER for c in _containers(task))
    ]
    migrations = [task for task in one_offs if task not in registrations]
    # What runs the migrations' image waits for them; the rest (Prefect) starts at once.
    migration_images = set().union(*(_images(task, plan) for task in migrations))
    migrated = threading.Event()
    with (
        secrets_manager(plan, region, plan.stack == "prod", database, redis_url) as manager,
        tempfile.TemporaryDirectory(prefix="slipway-rehearsal-") as temporary,
    ):
        # RDS creates the instance's database (db_name); the rest is the tasks' job.
        with psycopg.connect(database.libpq_dsn(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        rehearsal = Rehearsal(plan, database, manager, Path(temporary), region)

        def migrate() -> list[Outcome]:
            try:
                return [o for task in migrations for o in rehearsal.one_off(task)]
            finally:
                migrated.set()

        def job(resource: PlannedResource) -> Callable[[], list[Outcome]]:
            waits = bool(_images(resource, plan) & migration_images)

            def run_task() -> list[Outcome]:
                if waits:
                    migrated.wait()
                if resource.type == "aws:lambda/function:Function":
                    return rehearsal.function(resource)
                return rehearsal.service(resource)

            return run_task

        jobs: list[Callable[[], list[Outcome]]] = [
            migrate,
            *(job(resource) for resource in [*services, *functions]),
            *((lambda task=task: rehearsal.one_off(task)) for task in registrations),
        ]
        results: dict[int, list[Outcome]] = {}
        threads = [
            threading.Thread(target=lambda i=i, j=j: results.__setitem__(i, j()))
            for i, j in enumerate(jobs)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            rehearsal.stop()
        return [
            outcome
            for index in range(len(jobs))
            for outcome in results.get(index, [Outcome(f"job {index}", False, "did not finish")])
        ]


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    parser = argparse.ArgumentParser(
        prog="python -m infra_pulumi.rehearsal.tasks", description=__doc__
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REHEARSAL_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the local Redis the tasks' REDIS_URL secret points at",
    )
    args = parser.parse_args(argv)
    region = read_stack_config(args.stack).get("aws:region", "eu-west-1")
    started = time.monotonic()
    with ExitStack() as stack:
        # The server starts (a few seconds) while the program builds under mocks. It dies with
        # the thread that started it, so that thread lives until the server has stopped.
        starter = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        server = starter.submit(stack.enter_context, tls_postgres())
        plan = run(args.stack)
        outcomes = rehearse(plan, server.result(), region, args.redis_url)
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    unhealthy = [o for o in outcomes if not o.healthy]
    seconds = time.monotonic() - started
    print(
        f"{len(outcomes) - len(unhealthy)} healthy, {len(unhealthy)} unhealthy "
        f"({args.stack}, {seconds:.0f} s)"
    )
    return 1 if unhealthy or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
