"""The Prefect side: prefect.yaml's deployments, what `python -m flows serve` builds from them,
and one flow run under a real (temporary) Prefect server: the only test paying its start-up."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flows.helpers import flow_runs

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
FIXTURES = ROOT / "tests" / "fixtures"
CONTRACT_FLOWS = {"backup", "reconcile-payments", "dependency-scan", "tech-debt"}


def deployments() -> list[dict[str, Any]]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    result: list[dict[str, Any]] = document["deployments"]
    return result


def load_entrypoint(entrypoint: str) -> Any:
    path, _, function = entrypoint.partition(":")
    assert (ROOT / path).is_file(), f"{path} does not exist"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)


def test_every_contract_flow_has_exactly_one_deployment() -> None:
    assert sorted(d["flow_name"] for d in deployments()) == sorted(CONTRACT_FLOWS)


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["flow_name"])
def test_deployment_has_a_cron_schedule_retries_a_timeout_and_a_real_flow(
    deployment: dict[str, Any],
) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import Flow

    (schedule,) = deployment["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises when invalid
    assert deployment["retries"] >= 1
    assert deployment["retry_delay_seconds"] > 0
    assert deployment["timeout_seconds"] > 0
    assert deployment["work_pool"]["name"] == "slipway-process"
    flow = load_entrypoint(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    assert flow.name == deployment["flow_name"]
    # The flow itself carries the policy, so it holds however the run was started.
    assert flow.retries == deployment["retries"]
    assert flow.retry_delay_seconds == deployment["retry_delay_seconds"]
    assert flow.timeout_seconds == deployment["timeout_seconds"]
    parameters = set(flow.parameters.properties)
    assert set(deployment.get("parameters") or {}) <= parameters
    # Secrets are read from the environment, never passed as (plainly stored) parameters.
    assert not {"database_url", "stripe_secret_key"} & set(deployment.get("parameters") or {})


def test_serve_builds_scheduled_deployments_with_environment_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.deployments import build_deployments

    monkeypatch.setenv("BACKUP_BUCKET", "slipway-prod-backups")
    monkeypatch.delenv("BACKUP_KMS_KEY_ID", raising=False)

    built = {deployment.flow_name: deployment for deployment in build_deployments(PREFECT_YAML)}

    assert set(built) == CONTRACT_FLOWS
    backup = built["backup"]
    assert backup.parameters == {"bucket": "slipway-prod-backups", "verify": True}
    assert backup.schedules[0].schedule.cron == "15 3 * * *"
    assert all(deployment.schedules for deployment in built.values())


def test_a_flow_run_under_prefect_writes_artifacts_and_records_its_outcome(
    prefect_harness: str, recording_database: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.dependency_scan.flow import dependency_scan_flow

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==2.11.3\n")
    clean = dependency_scan_flow(
        lock=None,
        requirements=str(requirements),
        advisory_db=str(FIXTURES / "advisories"),
        reports_dir=str(tmp_path / "reports"),
        return_state=True,
    )
    vulnerable = dependency_scan_flow.with_options(retries=0)(
        lock=None,
        requirements=str(FIXTURES / "flows" / "requirements-vulnerable.txt"),
        advisory_db=str(FIXTURES / "advisories"),
        reports_dir=str(tmp_path / "reports"),
        return_state=True,
    )

    assert clean.is_completed()
    assert Path(clean.result()).name == "report.json"
    assert vulnerable.is_failed()  # unignored findings fail the run, as they exit 1 on the CLI
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["dependency-scan-report", "dependency-scan-table"])
            )
        )
    assert {artifact.key for artifact in artifacts} == {
        "dependency-scan-report",
        "dependency-scan-table",
    }
    assert any("PYSEC-2023-74" in str(artifact.data) for artifact in artifacts)
    assert [run["result"] for run in flow_runs(recording_database, "dependency-scan")] == [
        "success",
        "success",
    ]


def test_a_failed_flow_run_notifies_the_pages_topic_in_chatbot_format(
    prefect_harness: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    recording_database: str,
    tmp_path: Path,
) -> None:
    import boto3

    from flows.dependency_scan.flow import dependency_scan_flow
    from infra_pulumi.rehearsal.notifications import chatbot_problems

    sns = boto3.client("sns", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="slipway-test-alerts-pages")["TopicArn"]
    queue = sqs.create_queue(QueueName="slipway-test-slack")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FLOWS_ALERTS_TOPIC_ARN", topic)
    monkeypatch.setenv("FLOWS_STACK", "slipway-test")

    state = dependency_scan_flow.with_options(retries=0)(
        lock=None,
        requirements=str(tmp_path / "missing-requirements.txt"),
        advisory_db=str(FIXTURES / "advisories"),
        reports_dir=str(tmp_path / "reports"),
        return_state=True,
    )

    assert state.is_failed()
    received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    (message,) = [m["Body"] for m in received]
    assert chatbot_problems(message) == []  # Chatbot would relay it to Slack
    notice = json.loads(message)
    assert notice["content"]["title"] == ":x: Flow run failed: dependency-scan (slipway-test)"
    assert "missing-requirements.txt" in notice["content"]["description"]
    assert notice["metadata"]["threadId"] == "slipway-test/flow/dependency-scan"
    assert notice["content"]["keywords"] == ["page", "slipway-test"]


def test_a_run_under_prefect_links_its_kept_report_and_shows_download_progress(
    prefect_harness: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    recording_database: str,
    tmp_path: Path,
) -> None:
    import boto3
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.dependency_scan.flow import dependency_scan_flow
    from tests.flows.advisory_server import build_osv_zip, serve_directory

    reports = "slipway-prefect-reports"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=reports)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FLOWS_REPORTS_BUCKET", reports)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==2.11.3\n")
    build_osv_zip(tmp_path / "all.zip")

    with serve_directory(tmp_path) as url:
        state = dependency_scan_flow(
            lock=None,
            requirements=str(requirements),
            advisory_db=str(tmp_path / "fetched-database"),
            advisory_db_url=f"{url}/all.zip",
            reports_dir=str(tmp_path / "reports"),
            return_state=True,
        )

    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    # Prefect stores a link artifact as its Markdown rendering.
    link = by_key["dependency-scan-report-link"]
    assert f"s3://{reports}/reports/dependency-scan/" in str(link.data)
    assert f"{moto_endpoint}/{reports}/reports/dependency-scan/" in str(link.data)
    progress = by_key["advisory-database-download-progress"]
    assert progress.type == "progress"
    assert progress.data == 100.0
    assert "advisory database download" in str(progress.description)
