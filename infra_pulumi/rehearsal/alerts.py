"""`make alerts-rehearse`: alerts reach people, rehearsed with the real Prometheus and
Alertmanager.

    python -m infra_pulumi.rehearsal.alerts [--stack staging] [--postgres-url URL]

The project's rule files and the alert manager definition the Pulumi program generates (from
the mocked program) run in Debian's `prometheus` and `prometheus-alertmanager`. The SNS
receivers keep their topics, messages and templates but publish to a local SNS (moto), whose
HTTP subscribers stand in for AWS Chatbot (pages topic) and the e-mail subscription (tickets
topic). Prometheus scrapes a live API (uvicorn) on a scratch PostgreSQL database. Then:

- ticket: a backup run fails (`python -m flows backup` to a bucket that does not exist) and
  records its failure, which `OpsFlowFailed` turns into an e-mail naming the alert and its
  runbook;
- page: the scratch database stops accepting connections while clients log in; the API answers
  503, and `ApiAvailabilityBudgetBurnFast` must reach Slack as a valid Chatbot custom
  notification.

`amtool check-config` must pass on the generated configuration. The last line printed is a JSON
summary; the exit status is non-zero unless everything arrived as it should.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import yaml
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from api.auth.keys import generate_private_key_pem
from infra_pulumi import alerting
from infra_pulumi.alerting import AlertManagerDefinition
from infra_pulumi.plan import REPO_ROOT, Plan, read_stack_config
from infra_pulumi.rehearsal import alert_config
from infra_pulumi.rehearsal.containers import VENV_BIN, start
from infra_pulumi.rehearsal.inbox import Delivery, Inbox, running_inbox
from infra_pulumi.rehearsal.notifications import chatbot_problems, email_problems
from infra_pulumi.rehearsal.tls_postgres import free_port

PAGE_ALERT = "ApiAvailabilityBudgetBurnFast"
TICKET_ALERT = "OpsFlowFailed"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START_TIMEOUT_SECONDS = 30
DELIVERY_TIMEOUT_SECONDS = 40
MISSING_BUCKET = "slipway-rehearsal-no-such-bucket"


class RehearsalError(RuntimeError):
    """A part could not be started; the message says which."""


def _program(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RehearsalError(f"{names[0]} is not installed (`make system-deps`)")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def _running(
    name: str, command: Sequence[str], workdir: Path, environment: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """The process for the block's duration; yields its log file."""
    log = workdir / f"{name}.log"
    process = start(command, environment or {"PATH": os.environ.get("PATH", "")}, workdir, log)
    try:
        yield log
    finally:
        _stop(process)


def _wait_until_ready(url: str, name: str, log: Path, headers: Mapping[str, str] = {}) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=dict(headers), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RehearsalError(f"{name} did not become ready at {url}:\n{tail}")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _scratch_database(postgres_url: str) -> Iterator[str]:
    admin = _libpq(postgres_url)
    name = f"slipway_alerts_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise RehearsalError(f"PostgreSQL is unreachable at {postgres_url}: {error}") from None
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop_accepting_connections(postgres_url: str, database_url: str) -> None:
    """The database goes away for the API: new connections refused, open ones terminated."""
    name = make_url(database_url).database
    with psycopg.connect(_libpq(postgres_url), autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


def _amtool_check(config: Mapping[str, Any], path: Path) -> tuple[bool, str]:
    path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
    result = subprocess.run(
        [_program("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def _topic_channels(config: Mapping[str, Any]) -> dict[str, str]:
    """SNS topic ARN -> the inbox path its real subscriber stands for."""
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    channels = {"page": "slack", "ticket": "email"}
    return {
        receivers[route["receiver"]]["sns_configs"][0]["topic_arn"]: channels[severity]
        for route in config["route"]["routes"]
        for severity in [route["match"]["severity"]]
    }


def _local_sns(sns_url: str, topic_channels: Mapping[str, str], inbox: Inbox) -> None:
    """The stack's topics on moto, each with an HTTP subscriber in the inbox."""
    for topic_arn, channel in topic_channels.items():
        region = topic_arn.split(":")[3]
        client = boto3.client(
            "sns",
            endpoint_url=sns_url,
            region_name=region,
            aws_access_key_id=alert_config.LOCAL_SIGV4["access_key"],
            aws_secret_access_key=alert_config.LOCAL_SIGV4["secret_key"],
        )
        created = client.create_topic(Name=topic_arn.rsplit(":", 1)[1])["TopicArn"]
        if created != topic_arn:
            raise RehearsalError(f"local SNS made {created}, the configuration names {topic_arn}")
        client.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=f"{inbox.url}/{channel}")


# The outage's clients all come from 127.0.0.1: without this, the per-address login limit
# would answer 429 before the database is ever asked.
REHEARSAL_RATE_LIMITS = "[policies.auth-ip]\nquota = 100000\n"


def _api_environment(database_url: str, metrics_token: str, workdir: Path) -> dict[str, str]:
    rate_limits = workdir / "rate-limits.toml"
    rate_limits.write_text(REHEARSAL_RATE_LIMITS, encoding="utf-8")
    return {
        "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "/usr/bin:/bin")]),
        "PYTHONPATH": str(REPO_ROOT),
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "JWT_PRIVATE_KEYS": generate_private_key_pem(),
        "METRICS_TOKEN": metrics_token,
        "RATE_LIMITS_FILE": str(rate_limits),
        "LANG": "C.UTF-8",
    }


def _migrate(database_url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


def _fail_a_backup(database_url: str, sns_url: str, workdir: Path) -> int:
    """The backup flow, run as operators run it, against a bucket that does not exist."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AWS_ACCESS_KEY_ID": alert_config.LOCAL_SIGV4["access_key"],
        "AWS_SECRET_ACCESS_KEY": alert_config.LOCAL_SIGV4["secret_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    environment.pop("FLOWS_REPORTS_BUCKET", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows",
            "--reports-dir",
            str(workdir / "reports"),
            "backup",
            "--database-url",
            database_url,
            "--bucket",
            MISSING_BUCKET,
            "--s3-endpoint-url",
            sns_url,
            "--no-verify",
        ],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (workdir / "backup.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    return result.returncode


def _names(delivery: Delivery, alertname: str) -> bool:
    return alertname in delivery.subject


def _write_prometheus_config(workdir: Path, ports: Mapping[str, int], metrics_token: str) -> Path:
    rule_paths = []
    for rule_file in alerting.load_rule_files():
        path = workdir / "rules" / f"{rule_file.name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(alert_config.quick_rules(rule_file), encoding="utf-8")
        rule_paths.append(path)
    config = alert_config.prometheus_config(
        rule_paths,
        f"127.0.0.1:{ports['api']}",
        f"127.0.0.1:{ports['alertmanager']}",
        metrics_token,
    )
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _log_in_during_outage(api_url: str, statuses: dict[int, int]) -> Generator[None]:
    """Clients keep logging in (each login reads the database); one batch per step."""
    with httpx.Client(base_url=api_url, timeout=5) as client:
        while True:
            for _ in range(5):
                answer = client.post(
                    "/v1/auth/login",
                    json={"email": f"{uuid.uuid4().hex}@example.com", "password": "x" * 16},
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            yield


def rehearse(plan: Plan, postgres_url: str, workdir: Path) -> dict[str, Any]:
    """Runs the whole rehearsal in `workdir`; returns the summary (`ok` says whether it passed)."""
    began = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    resource = next(
        r
        for r in plan.resources
        if r.type == "aws:amp/alertManagerDefinition:AlertManagerDefinition"
    )
    definition = AlertManagerDefinition.parse(resource.props["definition"])
    template_dir = workdir / "templates"
    alert_config.write_templates(definition, template_dir)
    deployed_config = {**definition.config, "templates": [str(template_dir / "*.tmpl")]}
    config_ok, config_report = _amtool_check(deployed_config, workdir / "deployed.yml")

    metrics_token = secrets.token_urlsafe(32)
    ports = {name: free_port() for name in ("sns", "api", "alertmanager", "prometheus")}
    sns_url = f"http://127.0.0.1:{ports['sns']}"
    api_url = f"http://127.0.0.1:{ports['api']}"
    alertmanager_url = f"http://127.0.0.1:{ports['alertmanager']}"
    prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
    local_config = alert_config.local_alertmanager_config(definition, template_dir, sns_url)
    local_ok, local_report = _amtool_check(local_config, workdir / "alertmanager.yml")
    if not local_ok:
        raise RehearsalError(f"the rehearsal's alert manager configuration: {local_report}")
    prometheus_file = _write_prometheus_config(workdir, ports, metrics_token)
    step = time.monotonic()
    with ExitStack() as stack:
        inbox = stack.enter_context(running_inbox())
        # Everything that does not need the database starts while it is being migrated.
        logs = {
            "moto": stack.enter_context(
                _running(
                    "moto",
                    [
                        _program(f"{VENV_BIN}/moto_server", "moto_server"),
                        "-H",
                        "127.0.0.1",
                        "-p",
                        str(ports["sns"]),
                    ],
                    workdir,
                )
            ),
            "alertmanager": stack.enter_context(
                _running(
                    "alertmanager",
                    [
                        _program("prometheus-alertmanager", "alertmanager"),
                        f"--config.file={workdir / 'alertmanager.yml'}",
                        f"--storage.path={workdir / 'alertmanager-data'}",
                        f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                        "--cluster.listen-address=",
                    ],
                    workdir,
                )
            ),
            "prometheus": stack.enter_context(
                _running(
                    "prometheus",
                    [
                        _program("prometheus"),
                        f"--config.file={prometheus_file}",
                        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                        f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    ],
                    workdir,
                )
            ),
        }
        database_url = stack.enter_context(_scratch_database(postgres_url))
        _migrate(database_url)
        step = lap("database", step)
        logs["api"] = stack.enter_context(
            _running(
                "api",
                [
                    _program(f"{VENV_BIN}/uvicorn", "uvicorn"),
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["api"]),
                    "--no-proxy-headers",
                ],
                workdir,
                _api_environment(database_url, metrics_token, workdir),
            )
        )
        _wait_until_ready(f"{sns_url}/moto-api/", "moto_server", logs["moto"])
        _local_sns(sns_url, _topic_channels(definition.config), inbox)
        _wait_until_ready(f"{alertmanager_url}/-/ready", "Alertmanager", logs["alertmanager"])
        _wait_until_ready(f"{prometheus_url}/-/ready", "Prometheus", logs["prometheus"])
        _wait_until_ready(f"{api_url}/healthz", "the API", logs["api"])
        _wait_until_scraped(prometheus_url, logs["prometheus"])
        step = lap("start", step)

        backup_exit = _fail_a_backup(database_url, sns_url, workdir)
        ticket = inbox.wait_for(
            lambda d: d.channel == "email" and _names(d, TICKET_ALERT),
            DELIVERY_TIMEOUT_SECONDS,
            lambda: None,
        )
        step = lap("ticket", step)

        _stop_accepting_connections(postgres_url, database_url)
        statuses: dict[int, int] = {}
        clients = _log_in_during_outage(api_url, statuses)
        page = inbox.wait_for(
            lambda d: d.channel == "slack" and _names(d, PAGE_ALERT),
            DELIVERY_TIMEOUT_SECONDS,
            lambda: next(clients),
        )
        clients.close()
        lap("page", step)
        deliveries = inbox.deliveries()

    repository = read_stack_config(plan.stack)["slipway:githubRepository"]
    runbook = f"https://github.com/{repository}/blob/main/docs/alerts.md#{TICKET_ALERT.lower()}"
    # Every Slack-bound message must be one Chatbot relays, not only the one provoked.
    page_problems = [] if page else ["no page reached Slack"]
    page_problems += [
        f"{delivery.subject}: {problem}"
        for delivery in deliveries
        if delivery.channel == "slack"
        for problem in chatbot_problems(delivery.message)
    ]
    ticket_problems = (
        email_problems(ticket.subject, ticket.message, TICKET_ALERT, runbook)
        if ticket
        else ["no ticket reached e-mail"]
    )
    return {
        "ok": config_ok and not page_problems and not ticket_problems,
        "stack": plan.stack,
        "amtool_check_config": config_ok if config_ok else config_report,
        "page": {
            "alert": PAGE_ALERT,
            "channel": "slack (AWS Chatbot)",
            "problems": page_problems,
            "api_statuses": {str(code): count for code, count in sorted(statuses.items())},
        },
        "ticket": {
            "alert": TICKET_ALERT,
            "channel": "email",
            "problems": ticket_problems,
            "backup_exit_code": backup_exit,
        },
        "deliveries": [{"channel": d.channel, "subject": d.subject} for d in deliveries],
        "seconds": {**timings, "total": round(time.monotonic() - began, 1)},
    }


def _wait_until_scraped(prometheus_url: str, log: Path) -> None:
    """Until Prometheus holds two scrapes of the flow counters: a failure must be an increase."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    query = 'count_over_time(ops_flow_runs_total{flow="backup",result="failure"}[1m])'
    while time.monotonic() < deadline:
        answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
        result = answer.json()["data"]["result"]
        if result and float(result[0]["value"][1]) >= 2:
            return
        time.sleep(0.5)
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RehearsalError(f"Prometheus did not scrape the API's ops series:\n{tail}")


def build_plan(stack: str) -> Plan:
    """The stack under Pulumi mocks, in a process of its own (Pulumi's runtime is global)."""
    result = subprocess.run(
        [sys.executable, "-m", "infra_pulumi.plan", "--stack", stack, "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RehearsalError(f"the offline plan of {stack} failed: {result.stderr[-2000:]}")
    return Plan.from_json(result.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra_pulumi.rehearsal.alerts", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stack", default="staging", help="whose generated configuration")
    parser.add_argument(
        "--plan-file",
        type=Path,
        help="a plan from `python -m infra_pulumi.plan --json` (default: build it now)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL", DEFAULT_POSTGRES_URL),
        help="a PostgreSQL server where a scratch database may be created (TEST_DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    plan = (
        Plan.from_json(args.plan_file.read_text(encoding="utf-8"))
        if args.plan_file
        else build_plan(args.stack)
    )
    with tempfile.TemporaryDirectory(prefix="slipway-alerts-") as directory:
        try:
            summary = rehearse(plan, args.postgres_url, Path(directory))
        except RehearsalError as error:
            summary = {"ok": False, "stack": plan.stack, "error": str(error)}
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
